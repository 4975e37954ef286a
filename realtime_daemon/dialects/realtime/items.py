"""The Realtime dialect's conversation events: items created, deleted, retrieved.

A part of :class:`~.dialect.RealtimeDialect` (a mixin of it), kept apart for its size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from realtime_daemon.dialects.realtime.conversation import Conversation, check_item
from realtime_daemon.dialects.realtime.wire import Invalid, Names, required
from realtime_daemon.wire.events import Event, Reply

__all__ = ["ItemEvents"]


class ItemEvents:
    """The conversation's client events (a mixin of the Realtime dialect)."""

    _conversation: Conversation
    _names: Names
    _emit: Callable[[str, dict[str, Any]], None]

    def _reply(self, kind: str, fields: dict[str, Any]) -> Reply:
        raise NotImplementedError

    def _delete_item(self, event: dict[str, Any]) -> Event:
        item_id = required(event, "item_id", str)
        self._conversation.delete(item_id)
        return self._reply("conversation.item.deleted", {"item_id": item_id})

    def _retrieve_item(self, event: dict[str, Any]) -> Event:
        item = self._conversation.get(required(event, "item_id", str))
        if item is None:
            raise Invalid("item_not_found", f"item {event['item_id']!r} not found", "item_id")
        return self._reply("conversation.item.retrieved", {"item": item})

    def _create_item(self, event: dict[str, Any]) -> Event:
        item = check_item(event.get("item"), self._names)
        previous = event.get("previous_item_id")
        if previous is not None and not isinstance(previous, str):
            raise Invalid("invalid_type", "previous_item_id must be a string", "previous_item_id")
        previous = self._conversation.add(item, previous)
        return Reply(functools.partial(self._added, previous, item), in_order=True)

    def _added(self, previous: str | None, item: dict[str, Any]) -> None:
        """A client's item joined the conversation (GA: added, then done)."""
        fields = {"previous_item_id": previous, "item": item}
        self._emit(self._names.item_added, fields)
        if self._names.item_done is not None:
            self._emit(self._names.item_done, fields)
