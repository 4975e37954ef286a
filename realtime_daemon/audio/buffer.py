"""The session's input audio buffer: PCM16 appended, taken out as turns, on the audio's clock.

The buffer lives on the same timeline as the turn detector (:mod:`.vad`):
milliseconds of all the audio appended since it was made (plus
``start_ms``), which neither :meth:`InputBuffer.take` nor
:meth:`InputBuffer.clear` turns back, so a detector's ``audio_start_ms`` and
``audio_end_ms`` name the same audio in both. It is bounded: an append that
would take it past ``max_seconds`` is refused whole, and what it held stays,
to be committed or cleared; nothing is ever dropped silently.
"""

from __future__ import annotations

import dataclasses

from realtime_daemon.audio.errors import AudioError

__all__ = ["MIN_COMMIT_MS", "Committed", "InputBuffer"]

MIN_COMMIT_MS = 100
"""The least audio a commit takes, as OpenAI's ``input_audio_buffer.commit``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Committed:
    """Audio taken out of the buffer: what a user item holds.

    Attributes:
        pcm: PCM16 little-endian mono.
        rate: its samples a second.
        start_ms: where it starts on the buffer's timeline.
        end_ms: where it ends.
    """

    pcm: bytes
    rate: int
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        """Its length in milliseconds."""
        return self.end_ms - self.start_ms


class InputBuffer:
    """A bounded buffer of PCM16 mono at ``rate``, on the audio's own clock.

    Args:
        max_seconds: the most audio it holds.
        rate: the audio's samples a second.
        start_ms: where on the session's timeline the first sample appended is.

    Raises:
        ValueError: a bound or a rate that is not positive.
    """

    __slots__ = ("_held", "_limit", "_max_seconds", "_rate", "_start", "_start_ms")

    def __init__(self, max_seconds: float, rate: int, *, start_ms: int = 0) -> None:
        if max_seconds <= 0 or rate <= 0:
            raise ValueError(f"the bound and the rate must be positive: {max_seconds}, {rate}")
        self._rate = rate
        self._max_seconds = max_seconds
        self._limit = 2 * round(max_seconds * rate)  # bytes
        self._start_ms = start_ms
        self._start = 0  # samples before the held audio, since the timeline's start
        self._held = bytearray()

    @property
    def rate(self) -> int:
        """The audio's samples a second."""
        return self._rate

    @property
    def start_ms(self) -> int:
        """Where the held audio starts on the timeline."""
        return self._ms(self._start)

    @property
    def end_ms(self) -> int:
        """Where it ends: all the audio appended so far."""
        return self._ms(self._start + len(self._held) // 2)

    @property
    def duration_ms(self) -> int:
        """How much audio it holds, in milliseconds."""
        return len(self._held) // 2 * 1000 // self._rate

    def _ms(self, sample: int) -> int:
        return self._start_ms + sample * 1000 // self._rate

    def _sample(self, ms: int) -> int:
        return (ms - self._start_ms) * self._rate // 1000

    def append(self, pcm: bytes) -> None:
        """Add ``pcm`` (PCM16 at the buffer's rate) at the end, or refuse it whole.

        Raises:
            AudioError: ``invalid_value`` (param ``audio``): an odd number of bytes;
                ``input_audio_buffer_full`` (param ``audio``): the buffer would hold
                more than its bound; in either case the buffer is as it was.
        """
        if len(pcm) % 2:
            raise AudioError(
                "invalid_value",
                f"PCM16 audio must be a whole number of 16-bit samples: {len(pcm)} bytes is odd",
                "audio",
            )
        if len(self._held) + len(pcm) > self._limit:
            adding = len(pcm) // 2 * 1000 // self._rate
            raise AudioError(
                "input_audio_buffer_full",
                f"the input audio buffer holds at most {self._max_seconds:g} s of audio and"
                f" has {self.duration_ms} ms: this append of {adding} ms was refused;"
                " commit or clear the buffer first",
                "audio",
            )
        self._held += pcm

    def take(self, start_ms: int | None = None, end_ms: int | None = None) -> Committed:
        """Take the audio from ``start_ms`` to ``end_ms`` out; the audio before
        ``start_ms`` is dropped with it, the audio after ``end_ms`` stays. Each bound
        defaults to the held audio's own and is kept within it.

        Raises:
            AudioError: ``input_audio_buffer_commit_empty``: less than
                :data:`MIN_COMMIT_MS` of audio to take; the buffer is as it was.
        """
        held = len(self._held) // 2
        first = self._clamp(start_ms, 0, held)
        last = self._clamp(end_ms, held, held)
        first = min(first, last)
        ms = (last - first) * 1000 / self._rate
        if ms < MIN_COMMIT_MS:
            raise AudioError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least"
                f" {MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
            )
        taken = Committed(
            pcm=bytes(self._held[2 * first : 2 * last]),
            rate=self._rate,
            start_ms=self._ms(self._start + first),
            end_ms=self._ms(self._start + last),
        )
        del self._held[: 2 * last]
        self._start += last
        return taken

    def _clamp(self, ms: int | None, default: int, held: int) -> int:
        """A timeline position as an index into the held samples, within them."""
        if ms is None:
            return default
        return min(max(self._sample(ms) - self._start, 0), held)

    def clear(self) -> None:
        """Drop all the audio held; the timeline goes on from where it ends."""
        self._start += len(self._held) // 2
        self._held.clear()
