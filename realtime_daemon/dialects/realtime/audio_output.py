"""A Realtime session's (or response's) output audio settings: format, voice, speed.

GA carries them under ``audio.output`` (``format`` an object, ``voice``,
``speed``); beta at the top (``output_audio_format`` a string, ``voice``,
``speed``). Read into one :class:`OutputAudio`, checked whole before anything
applies, shown back in the client's shape. Whether a response speaks at all
is its output modalities (:class:`~.wire.Settings` ``spoken``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from realtime_daemon.dialects.realtime.audio_input import FORMATS, format_of
from realtime_daemon.dialects.realtime.errors import Invalid

__all__ = ["BETA_OUTPUT_FIELDS", "OutputAudio", "check_output_audio", "voice_param"]

BETA_OUTPUT_FIELDS = frozenset({"voice", "speed", "output_audio_format"})
"""A beta session's output audio fields (GA has them in ``audio.output``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class OutputAudio:
    """How spoken answers sound and travel.

    Attributes:
        format: the beta name of the format (``pcm16``, ``g711_ulaw``, ``g711_alaw``).
        voice: the voice asked for (an OpenAI name, or the engine's own); None: the
            daemon's ``--tts-voice``.
        speed: 0.25 to 1.5, as at OpenAI.
    """

    format: str = "pcm16"
    voice: str | None = None
    speed: float = 1.0

    def shown(self, beta: bool, default_voice: str) -> dict[str, Any]:
        """As a session or response shows them: beta's top-level fields, or GA's
        ``audio.output`` object."""
        voice = self.voice or default_voice
        if beta:
            return {"voice": voice, "output_audio_format": self.format, "speed": self.speed}
        fmt: dict[str, Any] = {"type": FORMATS[self.format]}
        if self.format == "pcm16":
            fmt["rate"] = 24000
        return {"format": fmt, "voice": voice, "speed": self.speed}


def voice_param(where: str, beta: bool) -> str:
    """The ``param`` of the voice field, for an ``error`` about it."""
    return f"{where}.voice" if beta else f"{where}.audio.output.voice"


def check_output_audio(
    fields: dict[str, Any], base: OutputAudio, *, beta: bool, where: str
) -> OutputAudio:
    """``base`` with the changes ``fields`` ask for (beta's fields, or GA's ``audio``
    object, of which only ``output`` is read here).

    Raises:
        Invalid: a wrong type or value, naming its ``param``; nothing applies.
    """
    if beta:
        names = {"output_audio_format": "format", "voice": "voice", "speed": "speed"}
        given = {names[k]: (v, f"{where}.{k}") for k, v in fields.items() if k in names}
    else:
        audio = fields.get("audio")
        value = audio.get("output") if isinstance(audio, dict) else None
        if value is None:
            return base
        param = f"{where}.audio.output"
        if not isinstance(value, dict):
            raise Invalid("invalid_type", f"{param} must be an object", param)
        given = {k: (v, f"{param}.{k}") for k, v in value.items()}
    changes: dict[str, Any] = {}
    for name, (value, param) in given.items():
        if value is None:
            continue  # null: not given
        if name == "format":
            changes["format"] = format_of(value, param, beta)
        elif name == "voice":
            changes["voice"] = _voice(value, param)
        elif name == "speed":
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise Invalid("invalid_type", f"{param} must be a number", param)
            if not 0.25 <= value <= 1.5:
                raise Invalid("invalid_value", f"{param} must be from 0.25 to 1.5", param)
            changes["speed"] = float(value)
        else:
            raise Invalid("unknown_parameter", f"Unknown parameter: '{param}'.", param)
    return dataclasses.replace(base, **changes)


def _voice(value: Any, param: str) -> str:
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        value = value["id"]  # a custom voice by id: the engine's own name
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise Invalid("invalid_value", f"{param} must be a voice name (1 to 64 characters)", param)
    return value
