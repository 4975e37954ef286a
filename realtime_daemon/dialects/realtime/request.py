"""What a ``response.create`` asks for, checked, and the chat-completion request it becomes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec

from realtime_daemon.dialects.realtime.conversation import Conversation, chat_messages, check_item
from realtime_daemon.dialects.realtime.wire import Invalid, Names, Settings, check_settings
from realtime_daemon.wire.chat import FrameError, Request, decode_request

__all__ = ["ResponseCreate"]

_MAX_METADATA = 16
_encoder = msgspec.json.Encoder()


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseCreate:
    """One response's parameters.

    Attributes:
        settings: the session's, with the response's own overrides.
        in_band: whether its output joins the conversation (``conversation: "auto"``).
        metadata: the client's metadata for it.
        items: its prompt: the conversation's items, or its own ``input``.
        not_applied: what it asked for and cannot get here (audio output: it answers
            in text), as the one ``error`` to send beside it; None when all applies.
    """

    settings: Settings
    in_band: bool
    metadata: dict[str, str] | None
    items: list[dict[str, Any]]
    not_applied: Invalid | None = None

    @classmethod
    def check(
        cls,
        fields: Any,
        base: Settings,
        names: Names,
        conversation: Conversation,
        speaks: bool = False,
    ) -> ResponseCreate:
        """The ``response`` object of a ``response.create``, checked; a null field
        (or a null ``response``) is the session's value; ``speaks``: audio output
        applies (the daemon has ``--tts``).

        Raises:
            Invalid: a field of a wrong type or value, or an unknown one.
        """
        fields = fields or {}
        if not isinstance(fields, dict):
            raise Invalid("invalid_type", "response must be an object", "response")
        extra = frozenset({"conversation", "input", "metadata"})
        settings, others, not_applied = check_settings(
            fields, base, names, "response", extra=extra, speaks=speaks
        )
        where = others.get("conversation", "auto")
        if where not in ("auto", "none"):
            raise Invalid(
                "invalid_value",
                "response.conversation must be auto or none",
                "response.conversation",
            )
        items = conversation.items()
        if "input" in others:
            items = _input(others["input"], conversation, names)
        metadata = _metadata(others.get("metadata"))
        return cls(settings, where == "auto", metadata, items, not_applied)

    def request(self, model: str, audio: Callable[[str], bytes | None] | None = None) -> Request:
        """The chat-completion request an engine answers for this response (``audio``:
        the WAV of each audio item, for a model that takes audio itself)."""
        body = {
            "model": model,
            "messages": chat_messages(self.items, self.settings.instructions, audio),
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.settings.chat_fields(),
        }
        try:
            return decode_request(_encoder.encode(body))
        except FrameError as exc:  # a conversation chat completions cannot say
            raise Invalid("invalid_request", str(exc)) from None


def _input(value: Any, conversation: Conversation, names: Names) -> list[dict[str, Any]]:
    """A response's own ``input``: items, and references to the conversation's."""
    if not isinstance(value, list):
        raise Invalid("invalid_type", "response.input must be a list", "response.input")
    items = []
    for i, entry in enumerate(value):
        param = f"response.input[{i}]"
        if isinstance(entry, dict) and entry.get("type") == "item_reference":
            reference = entry.get("id")
            item = conversation.get(reference) if isinstance(reference, str) else None
            if item is None:
                raise Invalid("item_not_found", f"{param}.id: no such item", f"{param}.id")
            items.append(item)
        else:
            items.append(check_item(entry, names, param))
    return items


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > _MAX_METADATA
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        raise Invalid(
            "invalid_value",
            "response.metadata must map at most 16 strings to strings",
            "response.metadata",
        )
    return value
