"""What speech engines are: speech-to-text and text-to-speech, their requests, failures, Protocols.

Types only, no I/O: the dialects that ask for a transcript or for speech and
the engines that make them (:mod:`realtime_daemon.engines.speech`) both
import it. A
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

__all__ = [
    "MAX_SPEECH_INPUT",
    "PCM_RATE",
    "SpeechRequest",
    "SynthesisFailed",
    "Synthesizer",
    "Transcriber",
    "Transcript",
    "TranscriptionFailed",
    "TranscriptionRequest",
]

PCM_RATE = 24000
"""The sample rate of a synthesizer's output (PCM16 little-endian mono), the Realtime API's."""
MAX_SPEECH_INPUT = 4096
"""Characters of text one :class:`SpeechRequest` holds at most (OpenAI's limit)."""


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


@dataclasses.dataclass(frozen=True, slots=True)
class SpeechRequest:
    """One speakable piece of an answer (a sentence or so), and how it is to be spoken.

    Attributes:
        text: what to say, at most :data:`MAX_SPEECH_INPUT` characters.
        voice: the engine's own voice, already mapped from the session's
            (:func:`realtime_daemon.config.speech_settings.engine_voice`).
        speed: 0.25 to 4.0, 1.0 the engine's normal pace.
        model: the speech model; None: the engine's (``--tts-model``).
    """

    text: str
    voice: str
    speed: float = 1.0
    model: str | None = None


class SynthesisFailed(Exception):
    """One synthesis failed; the response it belongs to fails, the session goes on.

    Args:
        code: a stable code, as :class:`TranscriptionFailed`'s:
            ``upstream_unavailable`` (no replica reachable, or each answered
            5xx, or one cut the answer), ``upstream_error`` (a replica refused
            the request: 4xx), ``timeout`` (no audio for ``--tts-timeout``),
            ``invalid_answer`` (an answer that is no PCM), ``engine_error``
            (a local engine broke).
        message: what the client is told: never an upstream URL.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Synthesizer(Protocol):
    """Anything with these is a text-to-speech engine.

    Built once for the daemon from its settings, it serves every session;
    ``synthesize`` is called once per speakable piece, several at once.
    """

    name: str
    """What logs and metrics call it (``openai``, ``espeak``, ...)."""

    voice: str
    """The voice when the session names none: ``--tts-voice``, else the engine's own."""

    passthrough: bool
    """Whether a voice name not in ``[tts.voices]`` goes to the engine as asked (an
    upstream, which knows its voices) or is replaced by :attr:`voice` (a local engine)."""

    async def synthesize(self, request: SpeechRequest, audio: Callable[[bytes], None]) -> None:
        """Speak ``request``: call ``audio`` with PCM16 little-endian mono pieces at
        :data:`PCM_RATE` as they are made (each an even number of bytes, none
        empty), and return once the last was handed on.

        Cancelled (:class:`asyncio.CancelledError` at an ``await``), it closes its
        upstream request or kills its process before it returns.

        Raises:
            SynthesisFailed: this synthesis failed (the code says how); pieces
                handed on before it stand.
        """
        ...

    async def aclose(self) -> None:
        """Release what the engine holds (connections, processes)."""
        ...
