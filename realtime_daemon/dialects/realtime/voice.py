"""A Realtime session's ears: the input audio buffer, turn detection, and transcripts.

``input_audio_buffer.append`` audio is decoded once into PCM16 at the
format's rate, kept in the session's bounded buffer, and fed to the turn
detector, whose times are the audio's own clock (milliseconds of all the
audio appended in the session). A detected end of speech, or a client's
``commit``, makes a user item of the buffered audio (an ``input_audio``
part, its transcript filled in when known) and asks the session to
transcribe it (a :class:`~realtime_daemon.wire.events.Work`). What the
client is told of transcripts follows the session's ``transcription``
setting; the transcript is always made, because a response needs it. A
response waits for the transcripts of the items before it
(:meth:`Ears.waits`); an item whose transcription failed is left out of
later responses.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import time
from collections.abc import Callable
from typing import Any, Protocol

from realtime_daemon.audio.buffer import Committed, InputBuffer
from realtime_daemon.audio.errors import AudioError
from realtime_daemon.audio.formats import FORMATS, decode
from realtime_daemon.audio.speech import (
    Transcript,
    TranscriptionFailed,
    TranscriptionRequest,
)
from realtime_daemon.audio.turns import SpeechStarted, TurnSettings
from realtime_daemon.audio.vad import TurnDetector
from realtime_daemon.audio.wav import wav_bytes
from realtime_daemon.dialects.realtime.audio_input import InputAudio
from realtime_daemon.dialects.realtime.conversation import Conversation
from realtime_daemon.dialects.realtime.hearing import Hearing
from realtime_daemon.dialects.realtime.wire import Invalid
from realtime_daemon.wire.chat import ErrorDetail
from realtime_daemon.wire.events import Event, Reply, Work

__all__ = ["MAX_APPEND", "Ears", "Listener"]

MAX_APPEND = 15 * 1024 * 1024
"""The most audio one append carries, as at OpenAI (15 MiB, before base64)."""

_FORMATS = {fmt.beta: fmt for fmt in FORMATS}


class Listener(Protocol):
    """What the ears tell the dialect."""

    def emit(self, kind: str, fields: dict[str, Any]) -> None:
        """Send a server event."""

    def turn_started(self) -> Event | None:
        """Speech began: the event that interrupts the running response, if any."""

    def turn_ended(self, item_id: str | None) -> tuple[Event, ...]:
        """A detected turn's item (None: no audio to commit) is committed: the response
        it creates, if any."""

    def responding_since(self) -> float | None:
        """When the last in-band response ended (monotonic seconds), ``inf`` while one
        runs, None if there was none."""

    def transcribed(self) -> tuple[Event, ...]:
        """A transcript came (or failed): the responses that waited for it."""


class Ears:
    """One session's input audio.

    Args:
        hearing: the transcriber and bounds.
        conversation: where committed items go.
        listener: the dialect.
        item_events: the shape's item event names (added, done or None).
    """

    def __init__(
        self,
        hearing: Hearing,
        conversation: Conversation,
        listener: Listener,
        item_events: tuple[str, str | None],
    ) -> None:
        self._hearing = hearing
        self._conversation = conversation
        self._listener = listener
        self._item_events = item_events
        self.settings = InputAudio()
        self._pending: set[str] = set()  # items waiting for their transcripts
        self._wavs: dict[str, bytes] = {}  # audio items' WAV, for models that take audio
        self.failed: set[str] = set()  # items whose transcription failed
        self._speech_item: str | None = None  # the item the current speech will be
        self._speech_start = 0
        self._idle = 0  # the idle timer's generation: a speech start disarms it
        self._configure(self.settings)

    def _configure(self, settings: InputAudio, clock: int = 0) -> None:
        """A buffer and a detector for ``settings``, their timeline going on at ``clock``."""
        fmt = _FORMATS[settings.format]
        self._format = fmt
        self._buffer = InputBuffer(self._hearing.max_seconds, fmt.rate, start_ms=clock)
        turn = settings.turn_detection
        self._detector = (
            None
            if turn is None
            else TurnDetector(
                TurnSettings(
                    threshold=turn.threshold,
                    prefix_padding_ms=turn.prefix_padding_ms,
                    silence_duration_ms=turn.silence_ms,
                ),
                fmt.rate,
                start_ms=clock,
            )
        )
        self._speech_item = None

    def update(self, settings: InputAudio) -> None:
        """New settings; a new format or detector starts from an empty buffer."""
        if settings != self.settings:
            changed = (settings.format, settings.turn_detection) != (
                self.settings.format,
                self.settings.turn_detection,
            )
            self.settings = settings
            if changed:  # what was buffered is dropped; the clock goes on
                self._configure(settings, self._buffer.end_ms)

    @property
    def told(self) -> bool:
        """Whether the client asked to hear of transcripts."""
        return self.settings.transcription is not None

    def waits(self) -> bool:
        """Whether a transcript is still to come for an item of the conversation."""
        return bool(self._pending)

    # -- client events ------------------------------------------------------------

    def append(self, event: dict[str, Any]) -> tuple[Event, ...]:
        """``input_audio_buffer.append``: the audio kept and listened to."""
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise Invalid("missing_required_parameter", "audio must be a base64 string", "audio")
        if len(audio) > (MAX_APPEND * 4 + 2) // 3 + 3:
            raise Invalid(
                "invalid_value", "audio: one append carries at most 15 MiB of audio", "audio"
            )
        try:
            data = binascii.a2b_base64(audio, strict_mode=True)
            pcm = decode(self._format, data)
            self._buffer.append(pcm)
        except binascii.Error:
            raise Invalid("invalid_value", "audio is not valid base64", "audio") from None
        except AudioError as exc:
            raise Invalid(exc.code, str(exc), exc.param or "audio") from None
        observer, engine = self._hearing.observer, self._hearing.transcriber.name
        observer.heard(engine, len(pcm) / 2 / self._format.rate)
        if self._detector is None:
            return ()
        events: list[Event] = []
        writes: list[Callable[[], None]] = []
        for change in self._detector.feed(pcm):
            if isinstance(change, SpeechStarted):
                self._idle += 1
                item_id = self._conversation.new_id()
                self._speech_item, self._speech_start = item_id, change.audio_start_ms
                fields = {"audio_start_ms": change.audio_start_ms, "item_id": item_id}
                writes.append(self._write("input_audio_buffer.speech_started", fields))
                interrupt = self._listener.turn_started()
                if interrupt is not None:
                    # Barge-in: speech_started, then the cut, both ahead of queued
                    # requests (the cut is a control event, as response.cancel is).
                    events.append(self._flush(writes, in_order=False))
                    events.append(interrupt)
                    writes = []
            elif self._speech_item is not None:
                item_id, self._speech_item = self._speech_item, None
                observer.turn_detected(engine)
                fields = {"audio_end_ms": change.audio_end_ms, "item_id": item_id}
                writes.append(self._write("input_audio_buffer.speech_stopped", fields))
                try:
                    taken = self._buffer.take(self._speech_start, change.audio_end_ms)
                except AudioError:
                    continue  # too short to be a turn: it stays in the buffer
                work = self._commit(taken, item_id, writes)
                events.append(self._flush(writes))
                writes = []
                events.append(work)
                events.extend(self._listener.turn_ended(item_id))
                events.extend(self._idle_timer())
        if writes:
            events.append(self._flush(writes))
        return tuple(events)

    def commit(self, event: dict[str, Any]) -> tuple[Event, ...]:
        """``input_audio_buffer.commit``: the buffer becomes a user item (no response)."""
        try:
            taken = self._buffer.take()
        except AudioError as exc:
            raise Invalid(exc.code, str(exc), exc.param) from None
        item_id = self._speech_item or self._conversation.new_id()
        self._speech_item = None
        if self._detector is not None:
            self._detector.reset()
        writes: list[Callable[[], None]] = []
        work = self._commit(taken, item_id, writes)
        return (self._flush(writes), work)

    def clear(self) -> Reply:
        """``input_audio_buffer.clear``: the buffered audio is dropped."""
        self._buffer.clear()
        self._speech_item = None
        if self._detector is not None:
            self._detector.reset()
        return self._flush([self._write("input_audio_buffer.cleared", {})])

    # -- the idle timeout -------------------------------------------------------------

    def _idle_timer(self, seconds: float | None = None) -> tuple[Event, ...]:
        """Arm ``idle_timeout_ms`` (wall clock): it fires unless speech starts first."""
        turn = self.settings.turn_detection
        if turn is None or turn.idle_timeout_ms is None:
            return ()
        self._idle += 1
        wait = turn.idle_timeout_ms / 1000 if seconds is None else seconds
        job = functools.partial(asyncio.sleep, wait)
        return (Work(job, functools.partial(self._idle_over, self._idle)),)

    def _idle_over(self, generation: int, outcome: object) -> tuple[Event, ...]:
        """The idle timer is up: counted from the last response's end when there was one
        since the speech; then the silence is committed and answered."""
        turn = self.settings.turn_detection
        if generation != self._idle or turn is None or turn.idle_timeout_ms is None:
            return ()  # speech started, or the setting changed, since it was armed
        timeout = turn.idle_timeout_ms / 1000
        since = self._listener.responding_since()
        if since is not None:
            left = since + timeout - time.monotonic()
            if left > 0:  # a response ran since (or runs): count from its end
                return self._idle_timer(min(left, timeout))
        end = self._buffer.end_ms
        start = max(0, end - turn.idle_timeout_ms)
        item_id: str | None = self._conversation.new_id()
        writes = [
            self._write(
                "input_audio_buffer.timeout_triggered",
                {"audio_start_ms": start, "audio_end_ms": end, "item_id": item_id},
            )
        ]
        events: list[Event] = []
        try:
            taken = self._buffer.take(start, end)
        except AudioError:
            item_id = None  # no audio came: the response is asked without a new item
        else:
            assert item_id is not None
            events.append(self._commit(taken, item_id, writes))
        return (self._flush(writes), *events, *self._listener.turn_ended(item_id))

    # -- commits and transcripts ------------------------------------------------------

    def _commit(
        self, taken: Committed, item_id: str, writes: list[Callable[[], None]]
    ) -> Work[Transcript | ErrorDetail]:
        part: dict[str, Any] = {"type": "input_audio", "transcript": None}
        item = {
            "id": item_id,
            "type": "message",
            "role": "user",
            "content": [part],
            "object": "realtime.item",
            "status": "completed",
        }
        previous = self._conversation.add(item)
        self._pending.add(item_id)
        if self._hearing.passthrough:
            self._keep(item_id, wav_bytes(taken.pcm, taken.rate))
        writes.append(
            self._write(
                "input_audio_buffer.committed", {"previous_item_id": previous, "item_id": item_id}
            )
        )
        added, done = self._item_events
        fields = {"previous_item_id": previous, "item": item}
        writes.append(self._write(added, fields))
        if done is not None:
            writes.append(self._write(done, fields))
        return Work(
            functools.partial(self._transcribe, taken, item_id),
            functools.partial(self._transcribed, item_id),
        )

    def _keep(self, item_id: str, wav: bytes) -> None:
        """Keep an item's audio for a model that takes audio: the newest items' up to the
        input buffer's bound in all (older ones fall back to their transcripts)."""
        self._wavs[item_id] = wav
        limit = self._hearing.max_seconds * 48000 + 44  # 24 kHz PCM16 and a header
        for kept in list(self._wavs):
            if self._conversation.get(kept) is None or sum(map(len, self._wavs.values())) > limit:
                del self._wavs[kept]

    @property
    def passthrough(self) -> frozenset[str]:
        """The models that take audio itself."""
        return self._hearing.passthrough

    def audio_of(self, item_id: str) -> bytes | None:
        """An audio item's WAV, if it is kept."""
        return self._wavs.get(item_id)

    async def _transcribe(self, taken: Committed, item_id: str) -> Transcript | ErrorDetail:
        transcription = self.settings.transcription
        request = TranscriptionRequest(
            audio=taken.pcm,
            rate=taken.rate,
            model=transcription.model if transcription else None,
            language=transcription.language if transcription else None,
            prompt=transcription.prompt if transcription else None,
        )
        transcriber, observer = self._hearing.transcriber, self._hearing.observer
        started = time.monotonic()
        try:
            transcript = await transcriber.transcribe(
                request, functools.partial(self._delta, item_id)
            )
        except TranscriptionFailed as exc:
            observer.transcribed(transcriber.name, time.monotonic() - started, exc.code)
            return ErrorDetail(code=exc.code, message=str(exc))
        observer.transcribed(transcriber.name, time.monotonic() - started, None)
        return transcript

    def _delta(self, item_id: str, text: str) -> None:
        if self.told and text:
            fields = {"item_id": item_id, "content_index": 0, "delta": text}
            self._listener.emit("conversation.item.input_audio_transcription.delta", fields)

    def _transcribed(self, item_id: str, outcome: Transcript | ErrorDetail) -> tuple[Event, ...]:
        self._pending.discard(item_id)
        item = self._conversation.get(item_id)
        if isinstance(outcome, ErrorDetail):
            self.failed.add(item_id)
            if self.told:
                error = {"type": "server_error", "code": outcome.code, "message": outcome.message}
                fields = {"item_id": item_id, "content_index": 0, "error": error}
                self._listener.emit("conversation.item.input_audio_transcription.failed", fields)
        else:
            if item is not None:
                item["content"][0]["transcript"] = outcome.text
                self._conversation.settle(item)
            if self.told:
                fields = {
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": outcome.text,
                    "usage": {"type": "duration", "seconds": round(outcome.seconds, 3)},
                }
                self._listener.emit("conversation.item.input_audio_transcription.completed", fields)
        return self._listener.transcribed()

    # -- writes in order -----------------------------------------------------------------

    def _write(self, kind: str, fields: dict[str, Any]) -> Callable[[], None]:
        return functools.partial(self._listener.emit, kind, fields)

    @staticmethod
    def _flush(writes: list[Callable[[], None]], in_order: bool = True) -> Reply:
        return Reply(functools.partial(_run_all, tuple(writes)), in_order=in_order)


def _run_all(writes: tuple[Callable[[], None], ...]) -> None:
    for write in writes:
        write()
