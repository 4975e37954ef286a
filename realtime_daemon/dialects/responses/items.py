"""Responses input items: checked, kept in one plain form, and said as chat messages.

A response's ``input`` is a string or a list of items: messages (with
``input_text`` / ``input_image`` parts, or the ``output_text`` parts of an
earlier answer), ``function_call`` and ``function_call_output`` items. Each
is checked field by field, so that a refusal names its ``param``, and kept
in one form (:func:`check_input`), the form a chain and the store keep;
:func:`chat_messages` says a conversation of them as chat-completion
messages. No I/O here.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Invalid", "chat_messages", "check_input", "input_item", "items_size"]

_encoder = msgspec.json.Encoder()
_ROLES = ("user", "system", "developer", "assistant")
_OUTPUT_PARTS = ("output_text", "refusal")


class Invalid(Exception):
    """A client event refused: an ``error`` event with ``code`` and ``param``; the
    connection goes on."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def items_size(items: list[dict[str, Any]]) -> int:
    """Items' weight against the conversation's byte bound: their JSON size."""
    return len(_encoder.encode(items))


def _text(value: dict[str, Any], name: str, param: str) -> str:
    text = value.get(name)
    if not isinstance(text, str):
        raise Invalid(
            "missing_required_parameter", f"{param}.{name} must be a string", f"{param}.{name}"
        )
    return text


def check_input(value: Any) -> list[dict[str, Any]]:
    """A ``response.create``'s ``input``, checked, as items in the kept form.

    Raises:
        Invalid: not a string or a list of the items a text conversation holds.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [_input_text(value)]}]
    if not isinstance(value, list):
        raise Invalid("invalid_type", "input must be a string or a list of items", "input")
    return [input_item(entry, f"input[{i}]") for i, entry in enumerate(value)]


def _input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def input_item(value: Any, param: str) -> dict[str, Any]:
    """One input item, checked (its ``id`` and ``status`` are dropped: the chain's
    items are the client's to name again).

    Raises:
        Invalid: an item of another type, or a field of a wrong type.
    """
    if not isinstance(value, dict):
        raise Invalid("invalid_type", f"{param} must be an object", param)
    kind = value.get("type", "message")
    if kind == "message":
        return _message(value, param)
    if kind == "function_call":
        return {
            "type": kind,
            "call_id": _text(value, "call_id", param),
            "name": _text(value, "name", param),
            "arguments": _text(value, "arguments", param),
        }
    if kind == "function_call_output":
        output = value.get("output")
        if isinstance(output, list):  # output parts: their text
            output = "".join(part.get("text", "") for part in output if isinstance(part, dict))
        if not isinstance(output, str):
            raise Invalid(
                "missing_required_parameter", f"{param}.output must be a string", f"{param}.output"
            )
        return {"type": kind, "call_id": _text(value, "call_id", param), "output": output}
    shown = kind if isinstance(kind, str) else repr(kind)
    raise Invalid(
        "invalid_value",
        f"{param}.type {shown!r} is not supported: message, function_call or function_call_output",
        f"{param}.type",
    )


def _message(value: dict[str, Any], param: str) -> dict[str, Any]:
    role = value.get("role")
    if role not in _ROLES:
        raise Invalid(
            "invalid_value",
            f"{param}.role must be user, system, developer or assistant",
            f"{param}.role",
        )
    content = value.get("content")
    if isinstance(content, str):
        text = "output_text" if role == "assistant" else "input_text"
        return {"type": "message", "role": role, "content": [{"type": text, "text": content}]}
    if not isinstance(content, list):
        raise Invalid(
            "invalid_type", f"{param}.content must be a string or a list", f"{param}.content"
        )
    parts = []
    for i, part in enumerate(content):
        at = f"{param}.content[{i}]"
        kind: Any = part.get("type") if isinstance(part, dict) else None
        if kind == "input_text" or (role == "assistant" and kind in _OUTPUT_PARTS):
            field = "refusal" if kind == "refusal" else "text"
            parts.append(
                {
                    "type": "output_text" if kind == "refusal" else kind,
                    "text": _text(part, field, at),
                }
            )
        elif kind == "input_image" and role == "user":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise Invalid(
                    "invalid_value",
                    f"{at}.image_url must be a URL (file_id is not supported)",
                    f"{at}.image_url",
                )
            parts.append({"type": kind, "image_url": url})
        else:
            shown = kind if isinstance(kind, str) else repr(kind)
            raise Invalid(
                "invalid_value",
                f"{at}.type {shown!r} is not supported in a {role} message",
                f"{at}.type",
            )
    return {"type": "message", "role": role, "content": parts}


def chat_messages(items: list[dict[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """The chat-completion messages of a conversation.

    Instructions lead as a system message (``developer`` is said as
    ``system``); a function call joins the assistant message before it;
    its output is a ``tool`` message.
    """
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item["type"]
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            messages.append({"role": role, "content": _content(item["content"])})
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


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text parts joined into one string; with images, chat's list of parts."""
    if all("text" in part for part in parts):
        return "".join(part["text"] for part in parts)
    return [
        {"type": "text", "text": part["text"]}
        if "text" in part
        else {"type": "image_url", "image_url": {"url": part["image_url"]}}
        for part in parts
    ]
