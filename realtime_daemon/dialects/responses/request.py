"""What a ``response.create`` asks for, checked, and the chat-completion request it becomes.

The event's body is the HTTP ``POST /v1/responses`` body. The fields a chat
model can honour are checked and kept; fields of the API's hosted features
are refused by name; any other field is accepted and ignored (clients send
``include``, ``truncation``, ``prompt_cache_key`` as a matter of course).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from realtime_daemon.dialects.responses.items import Invalid, chat_messages, check_input
from realtime_daemon.wire.chat import FrameError, Request, decode_request

__all__ = ["Create"]

_encoder = msgspec.json.Encoder()
_MAX_METADATA = 16
_TOOL_CHOICES = ("none", "auto", "required")
_REFUSED = {
    "conversation": "conversations are not supported: chain with previous_response_id",
    "prompt": "prompt templates are not supported",
    "background": "background responses are not supported over WebSocket",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Create:
    """One ``response.create``, checked.

    Attributes:
        model: the model asked for.
        input: its new input items (the kept form of :mod:`.items`).
        previous_response_id: the response it continues, if any.
        store: whether it goes to the response store too (OpenAI's default: true).
        generate: false for a warm-up: nothing is sent upstream.
        stream_id: its lane, echoed on its events; None: the connection's one lane.
        echoed: the request's fields the response object shows.
        chat: the chat-completion fields it asks for besides the messages.
    """

    model: str
    input: list[dict[str, Any]]
    previous_response_id: str | None
    store: bool
    generate: bool
    stream_id: str | None
    echoed: dict[str, Any]
    chat: dict[str, Any]

    @classmethod
    def check(cls, body: dict[str, Any]) -> Create:
        """The fields of a ``response.create``, checked.

        Raises:
            Invalid: a field of a wrong type or value, or a feature refused.
        """
        for name, why in _REFUSED.items():
            if body.get(name) not in (None, False):
                raise Invalid("unsupported_parameter", f"{name}: {why}", name)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Invalid("missing_required_parameter", "model must be a string", "model")
        instructions = _optional(body, "instructions", str)
        tools = _tools(body.get("tools"))
        choice = _tool_choice(body.get("tool_choice", "auto"))
        parallel = _optional(body, "parallel_tool_calls", bool)
        temperature = _number(body, "temperature")
        top_p = _number(body, "top_p")
        max_tokens = _optional(body, "max_output_tokens", int)
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 1):
            raise Invalid(
                "invalid_value", "max_output_tokens must be a positive integer", "max_output_tokens"
            )
        text, response_format = _text_format(body.get("text"))
        chat = _chat_fields(tools, choice, parallel)
        for name, value in (
            ("temperature", temperature),
            ("top_p", top_p),
            ("max_tokens", max_tokens),
            ("response_format", response_format),
        ):
            if value is not None:
                chat[name] = value
        echoed = {
            "instructions": instructions,
            "tools": tools,
            "tool_choice": choice,
            "parallel_tool_calls": True if parallel is None else parallel,
            "temperature": temperature,
            "top_p": top_p,
            "max_output_tokens": max_tokens,
            "metadata": _metadata(body.get("metadata")),
            "text": text,
            "truncation": "disabled",
        }
        stream_id = _optional(body, "stream_id", str)
        return cls(
            model=model,
            input=check_input(body.get("input")),
            previous_response_id=_optional(body, "previous_response_id", str),
            store=_optional(body, "store", bool) is not False,
            generate=_optional(body, "generate", bool) is not False,
            stream_id=stream_id,
            echoed=echoed,
            chat=chat,
        )

    def request(self, items: list[dict[str, Any]]) -> Request:
        """The chat-completion request an engine answers, with ``items`` the whole
        conversation (the chain's, then this response's input).

        Raises:
            Invalid: a conversation chat completions cannot say.
        """
        body = {
            "model": self.model,
            "messages": chat_messages(items, self.echoed["instructions"]),
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.chat,
        }
        try:
            return decode_request(_encoder.encode(body))
        except FrameError as exc:
            raise Invalid("invalid_request", str(exc), "input") from None


def _chat_fields(
    tools: list[dict[str, Any]], choice: str | dict[str, Any], parallel: bool | None
) -> dict[str, Any]:
    """The chat-completion fields of a response's function tools."""
    if not tools:
        return {}
    chat: dict[str, Any] = {
        "tools": [
            {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
            for t in tools
        ],
        "tool_choice": (
            {"type": "function", "function": {"name": choice["name"]}}
            if isinstance(choice, dict)
            else choice
        ),
    }
    if parallel is not None:
        chat["parallel_tool_calls"] = parallel
    return chat


def _optional(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or (kind is int and value is True)):
        what = {str: "a string", bool: "a boolean", int: "an integer"}[kind]
        raise Invalid("invalid_type", f"{name} must be {what}", name)
    return value


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise Invalid("invalid_type", f"{name} must be a number", name)
    return value


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("invalid_type", "tools must be a list", "tools")
    tools = []
    for i, tool in enumerate(value):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise Invalid("invalid_type", f"{at} must be an object", at)
        kind = tool.get("type")
        if kind != "function":
            shown = kind if isinstance(kind, str) else repr(kind)
            raise Invalid(
                "unsupported_tool",
                f"{at}.type {shown!r} is not supported: only function tools",
                f"{at}.type",
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise Invalid("missing_required_parameter", f"{at}.name must be a string", f"{at}.name")
        if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
            raise Invalid("invalid_type", f"{at}.parameters must be an object", f"{at}.parameters")
        kept = ("name", "description", "parameters", "strict")
        tools.append({"type": "function", **{k: tool[k] for k in kept if tool.get(k) is not None}})
    return tools


def _tool_choice(value: Any) -> str | dict[str, Any]:
    if value in _TOOL_CHOICES:
        return str(value)
    if (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(value.get("name"), str)
    ):
        return {"type": "function", "name": value["name"]}
    raise Invalid(
        "invalid_value",
        'tool_choice must be none, auto, required or {"type": "function", "name": ...}',
        "tool_choice",
    )


def _text_format(value: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``text`` as the response shows it, and the ``response_format`` it asks upstream."""
    if value is None:
        return {"format": {"type": "text"}}, None
    if not isinstance(value, dict):
        raise Invalid("invalid_type", "text must be an object", "text")
    form = value.get("format") or {"type": "text"}
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "text":
        return {"format": form}, None
    if kind == "json_object":
        return {"format": form}, {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(form.get("name"), str) or not isinstance(form.get("schema"), dict):
            raise Invalid(
                "missing_required_parameter",
                "text.format of type json_schema needs a name and a schema",
                "text.format",
            )
        kept = ("name", "schema", "strict", "description")
        schema = {k: form[k] for k in kept if form.get(k) is not None}
        return {"format": form}, {"type": "json_schema", "json_schema": schema}
    raise Invalid(
        "invalid_value", "text.format.type must be text, json_object or json_schema", "text.format"
    )


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > _MAX_METADATA
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        raise Invalid(
            "invalid_value", "metadata must map at most 16 strings to strings", "metadata"
        )
    return value
