"""One transcription answer, read in its connection's callbacks: streamed or plain.

:class:`TranscriptAnswer` is the :class:`~realtime_daemon.engines.openai.h1.Consumer`
of one ``POST /v1/audio/transcriptions``. The answer's Content-Type decides
how its body is read: ``text/event-stream`` is Server-Sent Events, each
event's pieces handed to ``delta`` as it arrives; anything else is one JSON
object with a ``text``. The streamed events of three families are read:

- OpenAI's: ``transcript.text.delta`` (``delta``) and ``transcript.text.done``
  (``text``, the whole transcript);
- vLLM's: chat-like chunks (``object: "transcription.chunk"``), each piece in
  ``choices[0].delta.content``;
- speaches' (faster-whisper servers): events of one segment's ``text``.

The stream ends at ``data: [DONE]`` or at the body's end. The transcript is
the ``done`` event's text when there is one, else the pieces joined.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import msgspec

from realtime_daemon.engines.openai.h1 import (
    Connection,
    ConnectionLost,
    ProtocolError,
    StaleConnection,
)
from realtime_daemon.engines.openai.sse import EventTooLarge, SSEParser

__all__ = [
    "MAX_ANSWER",
    "RETRY_STATUSES",
    "AttemptFailed",
    "TranscriptAnswer",
    "lost",
    "upstream_words",
]

MAX_ANSWER = 1024 * 1024
"""Bytes of a plain answer, or of one streamed event, at most."""

_ERROR_BODY_LIMIT = 4096
_DETAIL_LIMIT = 200  # characters of an upstream's own words passed on
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_DONE = b"[DONE]"


class AttemptFailed(Exception):
    """One attempt failed.

    Args:
        code: the code the transcription fails with if this is the last attempt.
        message: what the client is told (the replica by index, never its URL).
        retry: whether another replica may succeed.
    """

    def __init__(self, code: str, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry = retry


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None


class _Event(msgspec.Struct):
    """What is read of a streamed event or a plain answer; other fields are ignored."""

    type: str | None = None
    delta: str | None = None
    text: str | None = None
    choices: list[_Choice] | None = None
    error: object = None


_event_decoder = msgspec.json.Decoder(_Event)
_any_decoder = msgspec.json.Decoder()


def upstream_words(body: bytes) -> str:
    """An error answer's own message: OpenAI's ``error.message``, FastAPI's ``detail``,
    a plain ``error`` or ``message`` string, else the body's text; kept short."""
    try:
        value = _any_decoder.decode(body)
    except msgspec.DecodeError:
        value = body.decode(errors="replace").strip()
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        for words in (error, value.get("detail"), value.get("message")):
            if isinstance(words, str):
                value = words
                break
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return text[:_DETAIL_LIMIT]


class _Failing(Protocol):
    def failure(self, code: str, what: str, *, retry: bool | None = None) -> AttemptFailed: ...


def lost(answer: _Failing, exc: Exception, silent: str) -> Exception:
    """What a connection's failure mid-answer means for the attempt: a stale kept-alive
    connection as it is (tried again), anything else the attempt's failure (``silent``:
    how the watchdog's timeout is told)."""
    if isinstance(exc, StaleConnection):
        return exc
    if isinstance(exc, TimeoutError):
        return answer.failure("timeout", silent)
    if isinstance(exc, ProtocolError):
        return answer.failure("invalid_answer", str(exc))
    if isinstance(exc, ConnectionLost):
        return answer.failure("upstream_unavailable", str(exc))
    return answer.failure("upstream_unavailable", f"connection failed: {type(exc).__name__}")


class TranscriptAnswer:
    """One attempt's answer: :meth:`result` is the transcript, or :class:`AttemptFailed`.

    Args:
        name: the replica as the client is told of it (``stt replica 0``).
        delta: called with each streamed piece.
    """

    def __init__(self, name: str, delta: Callable[[str], None]) -> None:
        self.name = name
        self._delta = delta
        self.connection: Connection | None = None
        self._done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._status = 0
        self._reason = ""
        self._parser: SSEParser | None = None  # a streamed answer's
        self._body: bytearray | None = None  # a plain or failed answer's
        self._pieces: list[str] = []
        self._text: str | None = None  # the done event's
        self._events = 0
        self.streamed = False  # a piece went to delta: no other replica may be asked

    async def result(self) -> str:
        """The transcript, once the answer ended.

        Raises:
            AttemptFailed: the answer failed or is no transcript.
            StaleConnection: a kept-alive connection was closed before answering.
        """
        return await self._done

    def failure(self, code: str, what: str, *, retry: bool | None = None) -> AttemptFailed:
        """A failure of this attempt, retried unless told or something was streamed."""
        retry = not self.streamed if retry is None else retry
        return AttemptFailed(code, f"{self.name} {what}", retry=retry)

    def close(self) -> None:
        """An answer not read to its end drops its connection."""
        # A cancelled caller's await cancelled the future too: that answer is unread.
        if self._done.cancelled() or not self._done.done():
            if self.connection is not None:
                self.connection.abort()
            self._done.cancel()

    # -- h1.Consumer ---------------------------------------------------------------

    def head(self, status: int, reason: str, media_type: str) -> None:
        self._status, self._reason = status, reason
        if status // 100 == 2 and media_type == "text/event-stream":
            self._parser = SSEParser(MAX_ANSWER)
        else:
            self._body = bytearray()

    def body(self, data: bytes) -> None:
        if self._done.done():
            return
        try:
            if self._parser is not None:
                self._stream(data)
            else:
                self._collect(data)
        except AttemptFailed as exc:
            self._stop(exc)

    def end(self) -> None:
        if self._done.done():
            return
        try:
            if self._status // 100 != 2:
                raise self._refused()
            if self._parser is not None:
                try:
                    events = self._parser.close()
                except EventTooLarge as exc:
                    raise self.failure("invalid_answer", f"sent {exc}", retry=False) from None
                for event in events:
                    if event != _DONE:
                        self._read_event(event)
                self._finish()
            else:
                assert self._body is not None
                self._finish_plain(bytes(self._body))
        except AttemptFailed as exc:
            self._done.set_exception(exc)

    def failed(self, exc: Exception) -> None:
        if not self._done.done():
            self._done.set_exception(lost(self, exc, "sent nothing for too long"))

    # -- reading ---------------------------------------------------------------------

    def _stop(self, exc: AttemptFailed) -> None:
        if self.connection is not None:
            self.connection.abort()
        if not self._done.done():
            self._done.set_exception(exc)

    def _collect(self, data: bytes) -> None:
        assert self._body is not None
        self._body += data
        if self._status // 100 != 2:
            if len(self._body) >= _ERROR_BODY_LIMIT:
                raise self._refused()  # the rest is not read
        elif len(self._body) > MAX_ANSWER:
            raise self.failure("invalid_answer", f"sent an answer over {MAX_ANSWER} bytes")

    def _stream(self, data: bytes) -> None:
        assert self._parser is not None
        try:
            events = self._parser.feed(data)
        except EventTooLarge as exc:
            raise self.failure("invalid_answer", f"sent {exc}", retry=False) from None
        for event in events:
            if event == _DONE:
                # What follows [DONE] is the body's end: read on its own, to keep
                # the connection.
                assert self.connection is not None
                self.connection.discard()
                self._finish()
                return
            self._read_event(event)

    def _read_event(self, data: bytes) -> None:
        try:
            event = _event_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise self.failure("invalid_answer", f"sent a malformed event: {exc}") from None
        self._events += 1
        if event.error is not None:
            words = upstream_words(data)
            raise self.failure("upstream_error", f"reported an error: {words}", retry=False)
        piece: str | None = None
        if event.type == "transcript.text.done":
            self._text = event.text or ""
        elif event.type == "transcript.text.delta":
            piece = event.delta
        elif event.choices:
            delta = event.choices[0].delta
            piece = delta.content if delta is not None else None
        elif event.type is None:
            piece = event.text
        if piece:
            self._pieces.append(piece)
            self.streamed = True
            self._delta(piece)

    def _finish(self) -> None:
        if not self._events:
            raise self.failure("invalid_answer", "sent a stream without a transcript")
        text = self._text if self._text is not None else "".join(self._pieces)
        if not self._done.done():
            self._done.set_result(text)

    def _finish_plain(self, body: bytes) -> None:
        try:
            answer = _event_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise self.failure("invalid_answer", f"sent a malformed answer: {exc}") from None
        if answer.text is None:
            raise self.failure("invalid_answer", "sent an answer without a text")
        self._done.set_result(answer.text)

    def _refused(self) -> AttemptFailed:
        """A non-2xx answer: the upstream's own words, and whether to ask another."""
        assert self._body is not None
        detail = upstream_words(bytes(self._body[:_ERROR_BODY_LIMIT])) or self._reason
        status = self._status
        code = "upstream_unavailable" if status >= 500 else "upstream_error"
        return self.failure(
            code,
            f"answered {status}: {detail or 'no detail'}",
            retry=status in RETRY_STATUSES and not self.streamed,
        )
