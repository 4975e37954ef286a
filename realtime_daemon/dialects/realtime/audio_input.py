"""A Realtime session's input audio settings: format, turn detection, transcription.

GA sessions carry them under ``audio.input`` (``format`` an object,
``turn_detection``, ``transcription``, ``noise_reduction``); beta sessions
at the top (``input_audio_format`` a string, ``turn_detection``,
``input_audio_transcription``, ``input_audio_noise_reduction``). Both are
read into one :class:`InputAudio`, checked whole before anything applies,
and shown back in the client's shape. ``null`` turns turn detection,
transcription and noise reduction off. Defaults are OpenAI's: PCM16 at
24 kHz, server VAD on (threshold 0.5, 300 ms prefix padding, 500 ms of
silence, responses created and interrupted), transcription off.

``semantic_vad`` is served by the same detector as ``server_vad``: its
``eagerness`` sets the silence that ends a turn
(:func:`~realtime_daemon.audio.vad.eagerness_silence_ms`).
``noise_reduction`` is accepted and shown, and changes nothing: the audio
reaches the detector and the transcriber as it was sent.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from realtime_daemon.audio.turns import EAGERNESS_SILENCE_MS, eagerness_silence_ms
from realtime_daemon.dialects.realtime.errors import Invalid

__all__ = [
    "FORMATS",
    "InputAudio",
    "Transcription",
    "TurnDetection",
    "check_input_audio",
    "format_of",
]

FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
"""The input formats: beta name -> GA ``type``."""
_GA_FORMATS = {ga: beta for beta, ga in FORMATS.items()}

_VAD_TYPES = ("server_vad", "semantic_vad")
_NOISE_TYPES = ("near_field", "far_field")
_MAX_MS = 60_000


@dataclasses.dataclass(frozen=True, slots=True)
class TurnDetection:
    """When a user's turn starts and ends, and what that does."""

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None
    eagerness: str = "auto"  # semantic_vad only

    @property
    def silence_ms(self) -> int:
        """The silence that ends a turn, for the detector."""
        if self.type == "semantic_vad":
            return eagerness_silence_ms(self.eagerness)
        return self.silence_duration_ms

    def shown(self, beta: bool) -> dict[str, Any]:
        common = {"create_response": self.create_response}
        common["interrupt_response"] = self.interrupt_response
        if self.type == "semantic_vad":
            return {"type": self.type, "eagerness": self.eagerness, **common}
        shown: dict[str, Any] = {
            "type": self.type,
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            **common,
        }
        if not beta:
            shown["idle_timeout_ms"] = self.idle_timeout_ms
        return shown


@dataclasses.dataclass(frozen=True, slots=True)
class Transcription:
    """What the client asked of the transcription it is told of."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None

    def shown(self) -> dict[str, Any]:
        return {"model": self.model, "language": self.language, "prompt": self.prompt}


@dataclasses.dataclass(frozen=True, slots=True)
class InputAudio:
    """A session's input audio settings.

    Attributes:
        format: the beta name of the format (``pcm16``, ``g711_ulaw``, ``g711_alaw``).
        turn_detection: None: the client commits and asks for responses itself.
        transcription: None: the client is not told of transcripts (the session
            still transcribes what a response needs).
        noise_reduction: as the client set it (not applied).
    """

    format: str = "pcm16"
    turn_detection: TurnDetection | None = TurnDetection()
    transcription: Transcription | None = None
    noise_reduction: dict[str, Any] | None = None

    def shown(self, beta: bool) -> dict[str, Any]:
        """These settings as a session shows them: beta's top-level fields, or GA's
        ``audio.input`` object."""
        turn = None if self.turn_detection is None else self.turn_detection.shown(beta)
        transcription = None if self.transcription is None else self.transcription.shown()
        if beta:
            return {
                "input_audio_format": self.format,
                "turn_detection": turn,
                "input_audio_transcription": transcription,
                "input_audio_noise_reduction": self.noise_reduction,
            }
        fmt: dict[str, Any] = {"type": FORMATS[self.format]}
        if self.format == "pcm16":
            fmt["rate"] = 24000
        return {
            "format": fmt,
            "turn_detection": turn,
            "transcription": transcription,
            "noise_reduction": self.noise_reduction,
        }


BETA_FIELDS = frozenset(
    {"input_audio_format", "turn_detection", "input_audio_transcription"}
    | {"input_audio_noise_reduction"}
)
"""A beta session's input audio fields (GA has them in ``audio.input``)."""


def check_input_audio(
    fields: dict[str, Any], base: InputAudio, *, beta: bool, where: str = "session"
) -> InputAudio:
    """``base`` with the changes ``fields`` ask for: beta's top-level fields, or GA's
    ``audio`` object (of which only ``input`` is read here).

    Raises:
        Invalid: a wrong type or value, naming its ``param``; nothing applies.
    """
    changes: dict[str, Any] = {}
    if beta:
        names = {
            "input_audio_format": "format",
            "turn_detection": "turn_detection",
            "input_audio_transcription": "transcription",
            "input_audio_noise_reduction": "noise_reduction",
        }
        given = {names[k]: (v, f"{where}.{k}") for k, v in fields.items() if k in names}
    else:
        audio = fields.get("audio")
        if audio is None:
            return base
        if not isinstance(audio, dict):
            raise Invalid("invalid_type", f"{where}.audio must be an object", f"{where}.audio")
        value = audio.get("input")
        if value is None:
            return base
        param = f"{where}.audio.input"
        if not isinstance(value, dict):
            raise Invalid("invalid_type", f"{param} must be an object", param)
        for name in value:
            if name not in ("format", "turn_detection", "transcription", "noise_reduction"):
                at = f"{param}.{name}"
                raise Invalid("unknown_parameter", f"Unknown parameter: '{at}'.", at)
        given = {k: (v, f"{param}.{k}") for k, v in value.items()}
    for name, (value, param) in given.items():
        if name == "format":
            if value is not None:
                changes["format"] = format_of(value, param, beta)
        elif name == "turn_detection":
            changes["turn_detection"] = None if value is None else _turn(value, param, beta)
        elif name == "transcription":
            changes["transcription"] = None if value is None else _transcription(value, param)
        else:
            changes["noise_reduction"] = None if value is None else _noise(value, param)
    return dataclasses.replace(base, **changes)


def format_of(value: Any, param: str, beta: bool) -> str:
    """A format field (GA object, beta string) as its beta name.

    Raises:
        Invalid: not one of the three formats.
    """
    if beta:
        if value not in FORMATS:
            raise Invalid("invalid_value", f"{param} must be pcm16, g711_ulaw or g711_alaw", param)
        return str(value)
    if not isinstance(value, dict):
        raise Invalid("invalid_type", f"{param} must be an object", param)
    kind = value.get("type", "audio/pcm")
    if kind not in _GA_FORMATS:
        raise Invalid(
            "invalid_value", f"{param}.type must be audio/pcm, audio/pcmu or audio/pcma", param
        )
    rate = value.get("rate")
    if rate is not None and (kind != "audio/pcm" or rate != 24000):
        raise Invalid("invalid_value", f"{param}.rate: only 24000 (audio/pcm) is supported", param)
    return _GA_FORMATS[kind]


def _turn(value: Any, param: str, beta: bool) -> TurnDetection:
    if not isinstance(value, dict):
        raise Invalid("invalid_type", f"{param} must be an object or null", param)
    value = {k: v for k, v in value.items() if v is not None or k == "idle_timeout_ms"}
    kind = value.get("type", "server_vad" if beta else None)
    if kind not in _VAD_TYPES:
        raise Invalid("invalid_value", f"{param}.type must be server_vad or semantic_vad", param)
    allowed = {"type", "create_response", "interrupt_response"}
    if kind == "server_vad":
        allowed |= {"threshold", "prefix_padding_ms", "silence_duration_ms"}
        allowed |= set() if beta else {"idle_timeout_ms"}
    else:
        allowed |= {"eagerness"}
    changes: dict[str, Any] = {"type": kind}
    for name, field in value.items():
        at = f"{param}.{name}"
        if name not in allowed:
            raise Invalid("unknown_parameter", f"Unknown parameter: '{at}'.", at)
        if name == "threshold":
            if not _number(field) or not 0.0 <= field <= 1.0:
                raise Invalid("invalid_value", f"{at} must be a number from 0.0 to 1.0", at)
            changes[name] = float(field)
        elif name in ("prefix_padding_ms", "silence_duration_ms"):
            changes[name] = _ms(field, at, 0)
        elif name == "idle_timeout_ms":
            changes[name] = None if field is None else _ms(field, at, 1)
        elif name in ("create_response", "interrupt_response"):
            if not isinstance(field, bool):
                raise Invalid("invalid_type", f"{at} must be a boolean", at)
            changes[name] = field
        elif name == "eagerness":
            if field not in EAGERNESS_SILENCE_MS:
                raise Invalid("invalid_value", f"{at} must be low, medium, high or auto", at)
            changes[name] = field
    return TurnDetection(**changes)


def _transcription(value: Any, param: str) -> Transcription:
    if not isinstance(value, dict):
        raise Invalid("invalid_type", f"{param} must be an object or null", param)
    changes = {}
    for name, field in value.items():
        at = f"{param}.{name}"
        if name in ("model", "language", "prompt"):
            if field is not None and not isinstance(field, str):
                raise Invalid("invalid_type", f"{at} must be a string", at)
            changes[name] = field or None
        elif name not in ("delay", "keywords", "languages"):  # newer hints: accepted, unused
            raise Invalid("unknown_parameter", f"Unknown parameter: '{at}'.", at)
    return Transcription(**changes)


def _noise(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") not in _NOISE_TYPES:
        raise Invalid("invalid_value", f"{param}.type must be near_field or far_field", param)
    strength = value.get("strength", 1.0)
    if not _number(strength) or not 0.0 <= strength <= 1.0:
        at = f"{param}.strength"
        raise Invalid("invalid_value", f"{at} must be a number from 0.0 to 1.0", at)
    return {"type": value["type"], "strength": float(strength)}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ms(value: Any, param: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= _MAX_MS:
        raise Invalid("invalid_value", f"{param} must be an integer from {low} to {_MAX_MS}", param)
    return value
