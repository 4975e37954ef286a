"""A Realtime session's conversation: its items, their bounds, and their chat messages.

Items are kept as the JSON objects the client sees (``conversation.item.*``
events carry them as they are). A conversation is bounded in items and in
bytes: a client item past either bound is refused (``conversation_full``);
the output of a response that is running is always kept, so a full
conversation refuses the client's next item, never part of an answer.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from realtime_daemon.dialects.realtime.fields import given
from realtime_daemon.dialects.realtime.wire import Invalid, Names, unsupported

__all__ = ["Conversation", "chat_messages", "check_item", "item_size"]

ROOT = "root"
"""``previous_item_id`` of an item inserted first."""

_encoder = msgspec.json.Encoder()
_TEXT_PARTS = {
    "user": ("input_text",),
    "system": ("input_text",),
    "assistant": ("output_text", "text"),
}


def item_size(item: dict[str, Any]) -> int:
    """An item's weight against the conversation's byte bound: its JSON size."""
    return len(_encoder.encode(item))


def check_item(value: Any, names: Names, param: str = "item") -> dict[str, Any]:
    """A client's item, checked and completed (``object``, ``status``); a null optional
    field (``id``, ...) is as absent.

    Raises:
        Invalid: not an item a text conversation holds; ``param`` names the field.
    """
    if not isinstance(value, dict):
        raise Invalid("invalid_type", f"{param} must be an object", param)
    value = given(value, names.fields["conversation.item.create", "item"])
    kind = value.get("type")
    item_id = value.get("id")
    if item_id is not None and (not isinstance(item_id, str) or not 1 <= len(item_id) <= 64):
        raise Invalid(
            "invalid_value", f"{param}.id must be a string of 1 to 64 characters", f"{param}.id"
        )
    if kind == "message":
        item = _message(value, names, param)
    elif kind == "function_call":
        item = {
            "type": kind,
            "call_id": _text(value, "call_id", param),
            "name": _text(value, "name", param),
            "arguments": _text(value, "arguments", param),
        }
    elif kind == "function_call_output":
        item = {
            "type": kind,
            "call_id": _text(value, "call_id", param),
            "output": _text(value, "output", param),
        }
    else:
        raise Invalid(
            "invalid_value",
            f"{param}.type must be message, function_call or function_call_output",
            f"{param}.type",
        )
    if item_id is not None:
        item = {"id": item_id, **item}
    return {**item, "object": "realtime.item", "status": "completed"}


def _text(value: dict[str, Any], name: str, param: str) -> str:
    text = value.get(name)
    if not isinstance(text, str):
        raise Invalid(
            "missing_required_parameter", f"{param}.{name} must be a string", f"{param}.{name}"
        )
    return text


def _message(value: dict[str, Any], names: Names, param: str) -> dict[str, Any]:
    role = value.get("role")
    if not isinstance(role, str) or role not in _TEXT_PARTS:
        raise Invalid(
            "invalid_value", f"{param}.role must be user, assistant or system", f"{param}.role"
        )
    content = value.get("content")
    if not isinstance(content, list):
        raise Invalid("invalid_type", f"{param}.content must be a list", f"{param}.content")
    parts = []
    for i, part in enumerate(content):
        at = f"{param}.content[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        kind = kind if isinstance(kind, str) else None
        if kind in ("input_audio", "output_audio", "audio"):
            raise unsupported(f"{at}.type", "audio content")
        if kind in _TEXT_PARTS[role]:
            parts.append({"type": kind, "text": _text(part, "text", at)})
        elif kind == "input_image" and role == "user":
            parts.append({"type": kind, "image_url": _text(part, "image_url", at)})
        else:
            allowed = ", ".join((*_TEXT_PARTS[role], *(("input_image",) if role == "user" else ())))
            raise Invalid(
                "invalid_value", f"{at}.type of a {role} message must be {allowed}", f"{at}.type"
            )
    return {"type": "message", "role": role, "content": parts}


class Conversation:
    """The default conversation of a session, in order.

    Args:
        max_items: items kept at most.
        max_bytes: JSON bytes of items kept at most.
    """

    __slots__ = ("_by_id", "_items", "_next", "_sizes", "bytes", "max_bytes", "max_items")

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._items: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self._sizes: dict[str, int] = {}
        self._next = 0
        self.bytes = 0
        self.max_items = max_items
        self.max_bytes = max_bytes

    def new_id(self, prefix: str = "item") -> str:
        """A fresh id for an item (or a response, a call) of this session, one no
        client-chosen item id has taken."""
        while True:
            self._next += 1
            candidate = f"{prefix}_{self._next}"
            if candidate not in self._by_id:
                return candidate

    def get(self, item_id: str) -> dict[str, Any] | None:
        return self._by_id.get(item_id)

    def last_id(self) -> str | None:
        return self._items[-1]["id"] if self._items else None

    def add(self, item: dict[str, Any], previous_id: str | None = None) -> str | None:
        """Insert a client's item after ``previous_id`` (default: last; ``root``: first).

        Returns:
            the id of the item before it, None if it is first.

        Raises:
            Invalid: the id is taken, ``previous_id`` is unknown, or a bound is reached.
        """
        item_id = item.setdefault("id", self.new_id())
        if item_id in self._by_id:
            raise Invalid("duplicate_item_id", f"item {item_id!r} already exists", "item.id")
        if previous_id is None:
            index = len(self._items)
        elif previous_id == ROOT:
            index = 0
        else:
            before = self._by_id.get(previous_id)
            if before is None:
                raise Invalid(
                    "item_not_found",
                    f"previous_item_id {previous_id!r} not found",
                    "previous_item_id",
                )
            index = self._items.index(before) + 1
        size = item_size(item)
        if len(self._items) >= self.max_items or self.bytes + size > self.max_bytes:
            raise Invalid(
                "conversation_full",
                f"the conversation holds {len(self._items)} items ({self.bytes} bytes): at most"
                f" {self.max_items} items and {self.max_bytes} bytes; delete items to add more",
                "item",
            )
        self._insert(index, item, size)
        return self._items[index - 1]["id"] if index else None

    def append(self, item: dict[str, Any]) -> str | None:
        """Add an output item at the end, bounds or not; the id of the item before it."""
        previous = self.last_id()
        self._insert(len(self._items), item, 0)
        return previous

    def settle(self, item: dict[str, Any]) -> None:
        """An output item is final: count its bytes (if it is still here)."""
        item_id = item["id"]
        if item_id in self._sizes:
            size = item_size(item)
            self.bytes += size - self._sizes[item_id]
            self._sizes[item_id] = size

    def _insert(self, index: int, item: dict[str, Any], size: int) -> None:
        self._items.insert(index, item)
        self._by_id[item["id"]] = item
        self._sizes[item["id"]] = size
        self.bytes += size

    def delete(self, item_id: str) -> None:
        """Raises Invalid: no such item."""
        item = self._by_id.pop(item_id, None)
        if item is None:
            raise Invalid("item_not_found", f"item {item_id!r} not found", "item_id")
        self._items.remove(item)
        self.bytes -= self._sizes.pop(item_id)

    def items(self) -> list[dict[str, Any]]:
        return self._items


def chat_messages(
    items: Iterable[dict[str, Any]],
    instructions: str,
    audio: Callable[[str], bytes | None] | None = None,
) -> list[dict[str, Any]]:
    """The chat-completion messages of a conversation.

    Instructions lead as a system message; a function call joins the
    assistant message before it (one turn's text and calls are one message);
    its output is a ``tool`` message. A user's audio is its transcript; an
    audio item without one (its transcription failed) is left out. With
    ``audio`` (a model that takes audio itself), an audio item whose WAV it
    gives is an ``input_audio`` part instead.
    """
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item["type"]
        wav = audio(item["id"]) if audio is not None and kind == "message" else None
        if wav is not None:
            data = base64.b64encode(wav).decode()
            part = {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
            messages.append({"role": item["role"], "content": [part]})
        elif kind == "message":
            content = _content(item["content"])
            if content is not None:  # None: audio not (yet, or ever) transcribed
                messages.append({"role": item["role"], "content": content})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
            )
    return messages


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    """Text parts joined into one string; with images, chat's list of parts. Audio is
    its transcript; an item whose audio has none is left out (None)."""
    if any("transcript" in part for part in parts):  # audio, the user's or the assistant's
        parts = [
            {"type": "text", "text": part["transcript"]} if "transcript" in part else part
            for part in parts
        ]
        if any(part.get("text", "") is None for part in parts):
            return None
    if all("text" in part for part in parts):
        return "".join(part["text"] for part in parts)
    return [
        {"type": "text", "text": part["text"]}
        if "text" in part
        else {"type": "image_url", "image_url": {"url": part["image_url"]}}
        for part in parts
    ]
