"""Spoken answers: a response whose text becomes speech, piece by piece, as it streams.

The answer's text is cut into speakable pieces (:mod:`.pieces`); each is
sent to the synthesizer as soon as it is complete, while the engine goes on,
at most :attr:`Voice.max_concurrent` at once per response, and the audio
goes out in order. A piece's transcript delta goes out with its first audio
delta, not before, so that what the client shows is what it hears. The
session runs :meth:`SpokenResponse.speak` beside the engine, in the answer's
task: cancelling the answer (``response.cancel``, barge-in, the client gone)
cancels every synthesis in flight, which closes its request.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from realtime_daemon.audio.formats import FORMATS, encode
from realtime_daemon.audio.resample import Resampler
from realtime_daemon.audio.speech import PCM_RATE, SpeechRequest, SynthesisFailed, Synthesizer
from realtime_daemon.config.speech_settings import engine_voice
from realtime_daemon.dialects.realtime.hearing import UNOBSERVED, VoiceObserver
from realtime_daemon.dialects.realtime.pieces import Pieces
from realtime_daemon.dialects.realtime.response import Response
from realtime_daemon.wire.chat import ErrorDetail

__all__ = ["PAUSE", "SpokenResponse", "Voice"]

PAUSE = 0.3
"""Seconds of text without a piece's end after which what came is spoken anyway."""

_MAX_DELTA_MS = 500  # each audio delta holds at most this much audio, as OpenAI's
_FORMATS = {fmt.beta: fmt for fmt in FORMATS}


@dataclasses.dataclass(frozen=True, slots=True)
class Voice:
    """What a session speaks with: the daemon's synthesizer and its voices.

    Attributes:
        synthesizer: the text-to-speech engine (``--tts``).
        voices: ``[tts.voices]``: the session's voice names to the engine's.
        max_concurrent: syntheses one response runs at once (``--tts-max-concurrent``).
        model: the speech model (``--tts-model``), if set.
        observer: told of the seconds spoken.
    """

    synthesizer: Synthesizer
    voices: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_concurrent: int = 2
    model: str | None = None
    observer: VoiceObserver = UNOBSERVED

    @property
    def default(self) -> str:
        """The voice when the session names none."""
        return self.synthesizer.voice

    def engine_voice(self, asked: str | None) -> str:
        """The engine's voice for the one asked (:func:`~realtime_daemon.config.engine_voice`)."""
        return engine_voice(asked, self.voices, self.default, self.synthesizer.passthrough)


@dataclasses.dataclass(slots=True)
class _Piece:
    """One piece: its text, its audio as it comes, and how it ended."""

    text: str
    chunks: list[bytes] = dataclasses.field(default_factory=list)
    arrived: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    done: bool = False
    failure: SynthesisFailed | None = None

    def push(self, pcm: bytes) -> None:
        self.chunks.append(pcm)
        self.arrived.set()


class SpokenResponse(Response):
    """A :class:`~.response.Response` in audio: transcript and audio deltas for its text.

    Args:
        voice: the synthesizer and its voices.
        *args, **kwargs: as for :class:`~.response.Response`.
    """

    def __init__(self, voice: Voice, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._voice = voice
        output = self._settings.output
        self._engine_voice = voice.engine_voice(output.voice)
        self._format = _FORMATS[output.format]
        self._resampler = None if self._format.rate == PCM_RATE else Resampler(PCM_RATE, 8000)
        self._pieces = Pieces()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._over = False
        self._said: list[tuple[str, int]] = []  # each piece sent: its text and audio ms
        self._message: dict[str, Any] | None = None

    @property
    def item_id(self) -> str | None:
        """The id of its assistant message, once it has one (None out of band)."""
        message = self._message
        return message["id"] if message is not None and self._conversation is not None else None

    @property
    def said(self) -> list[tuple[str, int]]:
        """The pieces spoken so far: their text and their audio's milliseconds."""
        return self._said

    # -- the answer's text, as it streams ------------------------------------------

    def _text_delta(self, text: str) -> None:
        if self._message is None:
            item = self._open({"type": "message", "role": "assistant", "content": []})
            self._message = self._text = item
            part = {"type": "audio", "transcript": ""}
            self._emit(
                "response.content_part.added",
                {**self._where(item), "content_index": 0, "part": part},
            )
        for piece in self._pieces.feed(text):
            self._queue.put_nowait(piece)

    def finish(self, reason: str) -> None:
        super().finish(reason)
        self.text_over()

    def text_over(self) -> None:
        """No more text comes: what is left is the last piece."""
        if not self._over:
            self._over = True
            rest = self._pieces.flush()
            if rest is not None:
                self._queue.put_nowait(rest)
            self._queue.put_nowait(None)

    # -- speech --------------------------------------------------------------------

    async def speak(self, ready: Callable[[], Awaitable[None]]) -> None:
        """Synthesize the pieces as they come and send their audio in order, until the
        text is over and spoken; ``ready`` waits while the client lags."""
        order: asyncio.Queue[_Piece | None] = asyncio.Queue()
        room = asyncio.Semaphore(self._voice.max_concurrent)
        tasks: list[asyncio.Task[None]] = []
        async with asyncio.TaskGroup() as group:
            tasks.append(group.create_task(self._make(order, room, group, tasks)))
            while (piece := await order.get()) is not None and not self.done:
                sent = await self._send(piece, ready)
                room.release()  # its audio is out: the next piece may be synthesized
                if not sent:
                    break
            for task in tasks:  # a failure: the rest is not to be heard
                task.cancel()
        if self._resampler is not None and self._message is not None and not self.done:
            # The resampler's last samples: the audio ends where the speech did.
            rest = encode(self._format, self._resampler.flush())
            if rest:
                where = {**self._where(self._message), "content_index": 0}
                self._emit(self._names.audio_delta, {**where, "delta": _b64(rest)})

    async def _make(
        self,
        order: asyncio.Queue[_Piece | None],
        room: asyncio.Semaphore,
        group: asyncio.TaskGroup,
        tasks: list[asyncio.Task[None]],
    ) -> None:
        """Start a synthesis per piece as it comes, ``room`` bounding the pieces made and
        not yet sent: a client that reads slowly holds the syntheses back."""
        while (text := await self._next_piece()) is not None:
            await room.acquire()
            piece = _Piece(text)
            tasks.append(group.create_task(self._synthesize(piece)))
            order.put_nowait(piece)
        order.put_nowait(None)

    async def _next_piece(self) -> str | None:
        """The next piece; after :data:`PAUSE` without one, what text there is."""
        while True:
            try:
                return await asyncio.wait_for(self._queue.get(), PAUSE)
            except TimeoutError:
                rest = self._pieces.flush() if self._pieces.pending.strip() else None
                if rest is not None:
                    return rest

    async def _synthesize(self, piece: _Piece) -> None:
        request = SpeechRequest(
            text=piece.text,
            voice=self._engine_voice,
            speed=self._settings.output.speed,
            model=self._voice.model,
        )
        try:
            await self._voice.synthesizer.synthesize(request, piece.push)
        except SynthesisFailed as exc:
            piece.failure = exc
        finally:
            piece.done = True
            piece.arrived.set()

    async def _send(self, piece: _Piece, ready: Callable[[], Awaitable[None]]) -> bool:
        """Send one piece's audio as it arrives: its transcript with the first delta.
        False when its synthesis failed (the response has failed)."""
        assert self._message is not None
        where = {**self._where(self._message), "content_index": 0}
        sent, ms = 0, 0
        while True:
            await piece.arrived.wait()
            piece.arrived.clear()
            while sent < len(piece.chunks):
                if self.done:  # cancelled or failed meanwhile: nothing more of it
                    return False
                pcm = piece.chunks[sent]
                piece.chunks[sent] = b""  # sent: not kept
                sent += 1
                if ms == 0:
                    self._parts.append(piece.text)
                    self._emit(self._names.transcript_delta, {**where, "delta": piece.text})
                ms += self._audio(where, pcm)
            if piece.failure is not None:
                detail = ErrorDetail(code=piece.failure.code, message=str(piece.failure))
                self.fail(detail)
                return False
            if piece.done:
                self._said.append((piece.text, ms))
                self._voice.observer.spoke(self._voice.synthesizer.name, ms / 1000)
                return True
            await ready()

    def _audio(self, where: dict[str, Any], pcm: bytes) -> int:
        """Send ``pcm`` (24 kHz) in the response's format, at most 500 ms a delta; its ms."""
        if self._resampler is not None:
            pcm = encode(self._format, self._resampler.process(pcm))
        rate, width = self._format.rate, self._format.sample_bytes
        step = rate * width * _MAX_DELTA_MS // 1000
        for start in range(0, len(pcm), step):
            self._emit(self._names.audio_delta, {**where, "delta": _b64(pcm[start : start + step])})
        return len(pcm) // width * 1000 // rate

    # -- the end -----------------------------------------------------------------------

    def _close_message(self, item: dict[str, Any], where: dict[str, Any]) -> None:
        """The audio's and the transcript's done events, with what was spoken."""
        transcript = "".join(self._parts)
        at = {**where, "content_index": 0}
        self._emit(self._names.audio_done, at)
        self._emit(self._names.transcript_done, {**at, "transcript": transcript})
        part = {"type": "audio", "transcript": transcript}
        self._emit("response.content_part.done", {**at, "part": part})
        item["content"] = [{"type": self._names.audio_part, "transcript": transcript}]


def _b64(audio: bytes) -> str:
    return base64.b64encode(audio).decode()
