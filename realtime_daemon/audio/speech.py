"""What a speech-to-text engine is: the request, the transcript, the failure, the Protocol.

Types only, no I/O: the dialects that ask for a transcript and the engines
that make one (:mod:`realtime_daemon.engines.speech`) both import it. A
:class:`Transcriber` is built once for the daemon from its settings and
serves every session; ``transcribe`` is called once per committed turn.

Duties of a transcriber:

- return the whole :class:`Transcript`; call ``delta`` with each piece of it
  as it arrives, if it streams (a transcriber that does not never calls it);
- stop when cancelled (the session ended): a cancelled call gets
  :class:`asyncio.CancelledError` at its next ``await``;
- raise :class:`TranscriptionFailed` when one transcription fails, with a
  stable code; its message is what the client is told, so it never names
  an upstream URL. Any other exception is the transcriber's own fault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

__all__ = ["Transcriber", "Transcript", "TranscriptionFailed", "TranscriptionRequest"]


@dataclasses.dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """One turn's audio, and how the session asks for it to be transcribed.

    Attributes:
        audio: PCM16 little-endian mono samples.
        rate: their sample rate in Hz (24000, 16000 or 8000).
        model: the session's transcription model; None: the engine's default.
        language: ISO-639-1, if the session gave one.
        prompt: guidance for the transcription (style, names), if given.
    """

    audio: bytes
    rate: int
    model: str | None = None
    language: str | None = None
    prompt: str | None = None

    @property
    def seconds(self) -> float:
        """The audio's duration."""
        return len(self.audio) / 2 / self.rate


@dataclasses.dataclass(frozen=True, slots=True)
class Transcript:
    """A turn's transcript.

    Attributes:
        text: the whole transcript (empty when nothing was said).
        seconds: the audio's duration (what ``usage`` reports, ``type: "duration"``).
    """

    text: str
    seconds: float


class TranscriptionFailed(Exception):
    """One transcription failed; the session is told and goes on.

    Args:
        code: a stable, machine-readable code: ``upstream_unavailable`` (no
            replica could be reached, or each answered 5xx or cut the
            answer), ``upstream_error`` (a replica refused the request: 4xx),
            ``timeout``, ``invalid_answer`` (an answer that is no transcript),
            ``engine_error`` (a local engine broke).
        message: what the client is told: never an upstream URL.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Transcriber(Protocol):
    """Anything with these is a speech-to-text engine."""

    name: str
    """What logs and metrics call it (``openai``, ``pocketsphinx``, ...)."""

    async def transcribe(
        self, request: TranscriptionRequest, delta: Callable[[str], None]
    ) -> Transcript:
        """The transcript of ``request.audio``; ``delta`` gets each streamed piece.

        Raises:
            TranscriptionFailed: this transcription failed (the code says how).
        """
        ...

    async def aclose(self) -> None:
        """Release what the engine holds (connections, worker processes)."""
        ...
