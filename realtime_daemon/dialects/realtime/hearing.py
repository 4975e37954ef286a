"""What a Realtime session hears with: the daemon's transcriber, bounds and observer."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from realtime_daemon.audio.speech import Transcriber

__all__ = ["UNOBSERVED", "Hearing", "VoiceObserver"]


class VoiceObserver(Protocol):
    """Told of what sessions hear, e.g. for metrics (the server's ``Metrics``)."""

    def heard(self, engine: str, seconds: float) -> None:
        """``seconds`` of audio were appended."""

    def turn_detected(self, engine: str) -> None:
        """The turn detector found the end of a turn."""

    def transcribed(self, engine: str, seconds: float, code: str | None) -> None:
        """A transcription took ``seconds``; ``code`` is its failure's, None if it worked."""

    def spoke(self, engine: str, seconds: float) -> None:
        """``seconds`` of spoken answer were sent."""


class _Unobserved:
    def heard(self, engine: str, seconds: float) -> None:
        pass

    def turn_detected(self, engine: str) -> None:
        pass

    def transcribed(self, engine: str, seconds: float, code: str | None) -> None:
        pass

    def spoke(self, engine: str, seconds: float) -> None:
        pass


@dataclasses.dataclass(frozen=True, slots=True)
class Hearing:
    """What a session needs to hear: the daemon's transcriber, its bounds, its observer.

    Attributes:
        transcriber: the speech-to-text engine (``--stt``).
        max_seconds: the input audio buffer's bound (``--max-input-audio-seconds``).
        observer: told of audio, turns and transcriptions.
        passthrough: the models that take the user's audio itself (``[[models]]``
            ``audio_input = "passthrough"``) rather than its transcript.
    """

    transcriber: Transcriber
    max_seconds: float
    observer: VoiceObserver = dataclasses.field(default_factory=lambda: UNOBSERVED)
    passthrough: frozenset[str] = frozenset()


UNOBSERVED: VoiceObserver = _Unobserved()
"""An observer told nothing: a session's voice without metrics (tests, embedding)."""
