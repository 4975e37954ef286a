"""The OpenAI Realtime API's text subset: event names, settings and their checks.

No I/O here. Client events are decoded as plain JSON objects and checked
field by field, so that every refusal names the field (``param``) the way
OpenAI's ``error`` events do. The GA and the beta shape differ in a few
names (:class:`Names`) and settings fields (:data:`GA`, :data:`BETA`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "BETA",
    "GA",
    "Invalid",
    "Names",
    "Settings",
    "check_settings",
    "unsupported",
]

_TOOL_CHOICES = ("none", "auto", "required")


class Invalid(Exception):
    """A client event refused: an ``error`` event with ``code`` and ``param``, and the
    session goes on."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def unsupported(param: str, what: str) -> Invalid:
    """Audio and transcription, refused by a text-only server."""
    return Invalid(
        "unsupported_modality", f"{what} is not supported: this server speaks text only", param
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Names:
    """What the GA and the beta shape call the same things."""

    beta: bool
    item_added: str
    item_done: str | None  # beta has no conversation.item.done
    text_delta: str
    text_done: str
    text_part: str  # an assistant message's text part
    modalities: str
    max_tokens: str


GA = Names(
    beta=False,
    item_added="conversation.item.added",
    item_done="conversation.item.done",
    text_delta="response.output_text.delta",
    text_done="response.output_text.done",
    text_part="output_text",
    modalities="output_modalities",
    max_tokens="max_output_tokens",
)
BETA = Names(
    beta=True,
    item_added="conversation.item.created",
    item_done=None,
    text_delta="response.text.delta",
    text_done="response.text.done",
    text_part="text",
    modalities="modalities",
    max_tokens="max_response_output_tokens",
)

# Fields of the session a text server accepts and does not use (audio settings,
# tracing, ...): kept quiet, as OpenAI keeps fields it does not need for text.
_IGNORED = frozenset(
    {
        "audio",
        "include",
        "prompt",
        "reasoning",
        "tracing",
        "truncation",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "input_audio_noise_reduction",
        "input_audio_transcription",
        "turn_detection",
        "speed",
        "client_secret",
        "id",
        "object",
        "expires_at",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """What shapes a response: the session's, or one response's overrides of them."""

    instructions: str = ""
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None  # None: "inf"
    temperature: float | None = None  # beta only

    def chat_fields(self) -> dict[str, Any]:
        """These settings as chat-completion request fields."""
        fields: dict[str, Any] = {}
        if self.tools:
            fields["tools"] = [
                {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
                for t in self.tools
            ]
            choice = self.tool_choice
            if isinstance(choice, dict):
                choice = {"type": "function", "function": {"name": choice["name"]}}
            fields["tool_choice"] = choice
            if self.parallel_tool_calls is not None:
                fields["parallel_tool_calls"] = self.parallel_tool_calls
        if self.max_tokens is not None:
            fields["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            fields["temperature"] = self.temperature
        return fields

    def shown(self, names: Names) -> dict[str, Any]:
        """These settings as a session or response object shows them."""
        shown: dict[str, Any] = {
            names.modalities: ["text"],
            "instructions": self.instructions,
            "tools": list(self.tools),
            "tool_choice": self.tool_choice,
            names.max_tokens: "inf" if self.max_tokens is None else self.max_tokens,
        }
        if self.parallel_tool_calls is not None:
            shown["parallel_tool_calls"] = self.parallel_tool_calls
        if names.beta:
            shown["temperature"] = 0.8 if self.temperature is None else self.temperature
        return shown


def check_settings(
    fields: dict[str, Any], base: Settings, names: Names, where: str, *, extra: frozenset[str]
) -> tuple[Settings, dict[str, Any]]:
    """``base`` with the settings ``fields`` changes; the fields in ``extra`` are
    returned for the caller to check.

    Args:
        fields: a ``session`` or ``response`` object of a client event.
        base: the settings in force.
        names: the client's shape.
        where: the object's path, for ``param`` (``session``, ``response``).
        extra: other fields the caller knows.

    Raises:
        Invalid: a field of a wrong type or value, an unknown field, or audio.
    """
    changes: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for name, value in fields.items():
        param = f"{where}.{name}"
        if name in extra:
            others[name] = value
        elif name == "instructions":
            changes["instructions"] = _string(value, param)
        elif name == names.modalities:
            _check_modalities(value, param)
        elif name == names.max_tokens:
            changes["max_tokens"] = _max_tokens(value, param)
        elif name == "tools":
            changes["tools"] = _tools(value, param)
        elif name == "tool_choice":
            changes["tool_choice"] = _tool_choice(value, param)
        elif name == "parallel_tool_calls":
            if not isinstance(value, bool):
                raise Invalid("invalid_type", f"{param} must be a boolean", param)
            changes["parallel_tool_calls"] = value
        elif name == "temperature" and names.beta:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise Invalid("invalid_type", f"{param} must be a number", param)
            changes["temperature"] = float(value)
        elif name not in _IGNORED:
            raise Invalid("unknown_parameter", f"Unknown parameter: '{param}'.", param)
    return dataclasses.replace(base, **changes), others


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise Invalid("invalid_type", f"{param} must be a string", param)
    return value


def _check_modalities(value: Any, param: str) -> None:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise Invalid("invalid_type", f"{param} must be a list of strings", param)
    if "audio" in value:
        raise unsupported(param, "audio output")
    if value != ["text"]:
        raise Invalid("invalid_value", f'{param} must be ["text"]', param)


def _max_tokens(value: Any, param: str) -> int | None:
    if value == "inf":
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Invalid("invalid_value", f'{param} must be a positive integer or "inf"', param)
    return value


def _tools(value: Any, param: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        raise Invalid("invalid_type", f"{param} must be a list", param)
    tools = []
    for i, tool in enumerate(value):
        at = f"{param}[{i}]"
        if not isinstance(tool, dict):
            raise Invalid("invalid_type", f"{at} must be an object", at)
        if tool.get("type", "function") != "function":
            raise Invalid(
                "invalid_value", f"{at}.type: only function tools are supported", f"{at}.type"
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise Invalid("missing_required_parameter", f"{at}.name must be a string", f"{at}.name")
        if "parameters" in tool and not isinstance(tool["parameters"], dict):
            raise Invalid("invalid_type", f"{at}.parameters must be an object", f"{at}.parameters")
        kept = ("name", "description", "parameters", "strict")
        tools.append({"type": "function", **{k: tool[k] for k in kept if k in tool}})
    return tuple(tools)


def _tool_choice(value: Any, param: str) -> str | dict[str, Any]:
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
        f'{param} must be none, auto, required or {{"type": "function", "name": ...}}',
        param,
    )
