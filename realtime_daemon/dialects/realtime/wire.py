"""The OpenAI Realtime API's text subset: event names, settings and their checks.

No I/O here. Client events are decoded as plain JSON objects and checked
field by field, so that every refusal names the field (``param``) the way
OpenAI's ``error`` events do. The GA and the beta shape differ in a few
names (:class:`Names`) and settings fields (:data:`GA`, :data:`BETA`); the
fields of each client event, and what an explicit ``null`` means in each, are
one table per shape (:attr:`Names.fields`, from :mod:`.fields`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol

from realtime_daemon.dialects.realtime.audio_output import (
    BETA_OUTPUT_FIELDS,
    OutputAudio,
    check_output_audio,
)
from realtime_daemon.dialects.realtime.errors import Invalid
from realtime_daemon.dialects.realtime.fields import Fields, fields, given
from realtime_daemon.wire.chat import ErrorDetail

__all__ = [
    "BETA",
    "GA",
    "Checked",
    "Invalid",
    "Names",
    "Settings",
    "check_settings",
    "required",
    "session_expired",
    "unsupported",
    "usage",
]

_TOOL_CHOICES = ("none", "auto", "required")


class _Errors(Protocol):
    def error(self, detail: ErrorDetail, request_id: str | None = None) -> None: ...


def session_expired(dialect: _Errors) -> None:
    """The connection reached ``--max-session-duration``: a ``session_expired`` error (a
    Realtime dialect's ``expired``)."""
    dialect.error(
        ErrorDetail(
            code="session_expired",
            message="Your session hit the maximum duration: open a new one to go on.",
        )
    )


def unsupported(param: str, what: str) -> Invalid:
    """Audio and transcription, refused by a daemon started without a speech engine."""
    return Invalid(
        "unsupported_modality",
        f"{what} is not supported: this server hears no audio; start it with --stt NAME"
        " (a speech-to-text engine: see the README's Voice section) to send audio",
        param,
    )


def required(event: dict[str, Any], name: str, kind: type) -> Any:
    """A client event's required field ``name``, of type ``kind`` (dict or str).

    Raises:
        Invalid: missing, null or of another type.
    """
    value = event.get(name)
    if not isinstance(value, kind):
        what = "an object" if kind is dict else "a string"
        raise Invalid("missing_required_parameter", f"{name} must be {what}", name)
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Names:
    """What the GA and the beta shape call the same things, and their client events' fields."""

    beta: bool
    item_added: str
    item_done: str | None  # beta has no conversation.item.done
    text_delta: str
    text_done: str
    text_part: str  # an assistant message's text part
    modalities: str
    max_tokens: str
    audio_delta: str
    audio_done: str
    transcript_delta: str
    transcript_done: str
    audio_part: str  # an assistant message's audio part
    fields: Fields = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        table = fields(beta=self.beta, modalities=self.modalities, max_tokens=self.max_tokens)
        object.__setattr__(self, "fields", table)


GA = Names(
    beta=False,
    item_added="conversation.item.added",
    item_done="conversation.item.done",
    text_delta="response.output_text.delta",
    text_done="response.output_text.done",
    text_part="output_text",
    modalities="output_modalities",
    max_tokens="max_output_tokens",
    audio_delta="response.output_audio.delta",
    audio_done="response.output_audio.done",
    transcript_delta="response.output_audio_transcript.delta",
    transcript_done="response.output_audio_transcript.done",
    audio_part="output_audio",
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
    audio_delta="response.audio.delta",
    audio_done="response.audio.done",
    transcript_delta="response.audio_transcript.delta",
    transcript_done="response.audio_transcript.done",
    audio_part="audio",
)


def usage(input_tokens: int, output_tokens: int, total_tokens: int = 0) -> dict[str, Any]:
    """A response's ``usage`` object, all of it text tokens (``total_tokens`` 0: the sum)."""
    return {
        "total_tokens": total_tokens or input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {
            "text_tokens": input_tokens,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
        },
        "output_token_details": {"text_tokens": output_tokens, "audio_tokens": 0},
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """What shapes a response: the session's, or one response's overrides of them."""

    instructions: str = ""
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None  # None: "inf"
    temperature: float | None = None  # beta only
    spoken: bool = False  # output modalities ["audio"] (a daemon with --tts)
    output: OutputAudio = dataclasses.field(default_factory=OutputAudio)

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

    def modalities(self, names: Names) -> list[str]:
        """The output modalities, as the shape names them (beta: audio with its text)."""
        if not self.spoken:
            return ["text"]
        return ["text", "audio"] if names.beta else ["audio"]

    def shown(self, names: Names) -> dict[str, Any]:
        """These settings as a session or response object shows them."""
        shown: dict[str, Any] = {
            names.modalities: self.modalities(names),
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


class Checked(NamedTuple):
    """A ``session`` or ``response`` object, checked.

    Attributes:
        settings: the settings in force with the object's changes.
        others: the fields the caller checks (``extra``), nulls read as absent left out.
        not_applied: what was asked and cannot be had on this daemon (audio output),
            as the one ``error`` to send beside the answer; None when all applies.
    """

    settings: Settings
    others: dict[str, Any]
    not_applied: Invalid | None


_EVENT_OF = {"session": "session.update", "response": "response.create"}


def check_settings(
    value: dict[str, Any],
    base: Settings,
    names: Names,
    where: str,
    *,
    extra: frozenset[str],
    speaks: bool = False,
) -> Checked:
    """``base`` with the settings ``value`` changes; the fields in ``extra`` are
    returned for the caller to check. An explicit null reads as the field absent
    (:func:`.fields.given`); audio output, not available here, is left out and
    reported in :attr:`Checked.not_applied`, the rest applies.

    Args:
        value: a ``session`` or ``response`` object of a client event.
        base: the settings in force.
        names: the client's shape.
        where: the object's path, for ``param`` (``session``, ``response``).
        extra: other fields the caller knows.
        speaks: the daemon has a speech engine (``--tts``): audio output applies.

    Raises:
        Invalid: a field of a wrong type or value, or an unknown field: nothing applies.
    """
    known = names.fields[_EVENT_OF[where], where]
    changes: dict[str, Any] = {}
    others: dict[str, Any] = {}
    not_applied = None
    for name, field in given(value, known).items():
        param = f"{where}.{name}"
        if name in extra:
            others[name] = field
        if speaks and (name == "audio" or (names.beta and name in BETA_OUTPUT_FIELDS)):
            output = check_output_audio(
                {name: field}, changes.get("output", base.output), beta=names.beta, where=where
            )
            changes["output"] = output
        elif name in extra:
            pass
        elif name == "instructions":
            changes["instructions"] = _string(field, param)
        elif name == names.modalities:
            asks = _asks_audio(field, param)
            if speaks:
                changes["spoken"] = asks
            elif asks:
                not_applied = _no_audio_output(param, where, names)
        elif name == names.max_tokens:
            changes["max_tokens"] = _max_tokens(field, param)
        elif name == "tools":
            changes["tools"] = _tools(field, param)
        elif name == "tool_choice":
            changes["tool_choice"] = _tool_choice(field, param)
        elif name == "parallel_tool_calls":
            if not isinstance(field, bool):
                raise Invalid("invalid_type", f"{param} must be a boolean", param)
            changes["parallel_tool_calls"] = field
        elif name == "temperature" and names.beta:
            if not isinstance(field, int | float) or isinstance(field, bool):
                raise Invalid("invalid_type", f"{param} must be a number", param)
            changes["temperature"] = float(field)
        elif name not in known:
            raise Invalid("unknown_parameter", f"Unknown parameter: '{param}'.", param)
    return Checked(dataclasses.replace(base, **changes), others, not_applied)


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise Invalid("invalid_type", f"{param} must be a string", param)
    return value


def _asks_audio(value: Any, param: str) -> bool:
    """Whether output modalities ask for audio (text is what every answer gets)."""
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise Invalid("invalid_type", f"{param} must be a list of strings", param)
    if not value or not set(value) <= {"text", "audio"}:
        raise Invalid("invalid_value", f'{param} must be ["text"] or ["audio"]', param)
    return "audio" in value


def _no_audio_output(param: str, where: str, names: Names) -> Invalid:
    # Audio output needs a text-to-speech engine, which this daemon was started
    # without: the answer comes in text, and the client hears why once.
    what = "the session answers" if where == "session" else "this response answers"
    return Invalid(
        "unsupported_modality",
        f"{param}: audio output is not available: speech engines are not configured on this"
        f' daemon (--tts NAME turns it on), so {what} in text ({names.modalities} ["text"]);'
        f" everything else in the {where} was applied",
        param,
    )


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
