"""What a turn is: the settings that detect it, the events that report it, and how the
Realtime API's settings map onto the detector (:mod:`.vad`).

``threshold`` ("higher needs louder audio") maps to both webrtcvad's mode
(:func:`aggressiveness`) and a level floor (:func:`level_floor_dbfs`)::

    threshold   0.0 .. 0.25  .. 0.5  .. 0.75 .. 1.0
    webrtcvad   mode 0   1       2      3       3
    floor       -65 dBFS, rising linearly to -25 dBFS (-45 at the default 0.5)

``semantic_vad`` is served by the same detector, its eagerness read as the
silence that ends a turn (:func:`eagerness_silence_ms`).
"""

from __future__ import annotations

import dataclasses

from realtime_daemon.audio.errors import AudioError

__all__ = [
    "EAGERNESS_SILENCE_MS",
    "SpeechStarted",
    "SpeechStopped",
    "TurnEvent",
    "TurnSettings",
    "aggressiveness",
    "eagerness_silence_ms",
    "level_floor_dbfs",
]

EAGERNESS_SILENCE_MS = {"low": 1500, "medium": 800, "auto": 800, "high": 300}
"""``semantic_vad``'s eagerness as the silence that ends a turn: the daemon has no
model of what was said, so eagerness is how long a pause it waits out. ``auto``
is ``medium``, as OpenAI's; all sit well within OpenAI's maximum timeouts for
them (8, 4 and 2 s)."""


def eagerness_silence_ms(eagerness: str) -> int:
    """The ``silence_duration_ms`` that serves ``semantic_vad`` at ``eagerness``.

    Raises:
        AudioError: ``invalid_value`` (param ``eagerness``): an unknown eagerness.
    """
    silence = EAGERNESS_SILENCE_MS.get(eagerness)
    if silence is None:
        names = ", ".join(repr(e) for e in EAGERNESS_SILENCE_MS)
        raise AudioError("invalid_value", f"eagerness must be one of {names}", "eagerness")
    return silence


def aggressiveness(threshold: float) -> int:
    """webrtcvad's mode (0 to 3, the least to the most ready to call a frame noise)
    for a ``threshold``: each quarter of the range one mode up, 1.0 the last."""
    return min(3, int(threshold * 4))


def level_floor_dbfs(threshold: float) -> float:
    """The RMS level (dB of full scale) below which a frame is not speech: from
    -65 dBFS at ``threshold`` 0 to -25 dBFS at 1."""
    return -65.0 + 40.0 * threshold


@dataclasses.dataclass(frozen=True, slots=True)
class TurnSettings:
    """How turns are detected: the Realtime API's ``server_vad`` settings.

    Attributes:
        threshold: 0.0 to 1.0, higher needs louder audio.
        prefix_padding_ms: audio kept before the detected onset.
        silence_duration_ms: the silence that ends a turn.

    Raises:
        AudioError: ``invalid_value``, ``param`` the field: a value out of range.
    """

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise AudioError("invalid_value", "threshold must be from 0.0 to 1.0", "threshold")
        for name in ("prefix_padding_ms", "silence_duration_ms"):
            if getattr(self, name) < 0:
                raise AudioError("invalid_value", f"{name} must not be negative", name)


@dataclasses.dataclass(frozen=True, slots=True)
class SpeechStarted:
    """A turn has begun.

    Attributes:
        audio_start_ms: where the turn's audio starts: the onset less the prefix padding.
        onset_ms: where speech was detected.
    """

    audio_start_ms: int
    onset_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class SpeechStopped:
    """A turn has ended.

    Attributes:
        audio_end_ms: where the turn's audio ends: the end of speech plus the silence.
        speech_end_ms: where speech ended.
    """

    audio_end_ms: int
    speech_end_ms: int


TurnEvent = SpeechStarted | SpeechStopped
