"""One upstream connection: an asyncio.Protocol driving :mod:`.parse`, one request at a time.

Each read is parsed and handed to the answer's :class:`Consumer` inside
``data_received``: the answer's task wakes only when the answer ends, fails
or must wait for its client. The connection knows its pool only as an
:class:`Owner`: it says when its answer was read to the end
(:meth:`Owner.released`) and when it closed (:meth:`Owner.lost`).
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from realtime_daemon.engines.openai.h1.parse import (
    BodyReader,
    HeadReader,
    ProtocolError,
)
from realtime_daemon.engines.openai.watchdog import Watch, Watchdog

__all__ = [
    "MAX_DISCARD",
    "Connection",
    "ConnectionLost",
    "Consumer",
    "Owner",
    "StaleConnection",
]

MAX_DISCARD = 64 * 1024
"""Bytes of a discarded answer's rest read to keep its connection; past them it is closed."""


class ConnectionLost(ConnectionError):
    """The upstream closed the connection before the answer's end (the message
    says when, and names no host)."""


class StaleConnection(ConnectionLost):
    """A reused keep-alive connection closed before any byte of the answer: the
    upstream had dropped it while idle; the request may be sent again on a new one."""


class Consumer(Protocol):
    """Who an answer is handed to, from the connection's callbacks."""

    def head(self, status: int, reason: str, media_type: str) -> None:
        """The answer's status (the final one: interim answers are skipped) and its
        Content-Type's media type (lower-cased, without parameters; "" if none)."""

    def body(self, data: bytes) -> None:
        """Bytes of the answer's body, as one read brought them (de-chunked)."""

    def end(self) -> None:
        """The body is complete."""

    def failed(self, exc: Exception) -> None:
        """The answer cannot be read to its end: ConnectionLost (StaleConnection
        among them), ProtocolError, or TimeoutError (silent past the read timeout)."""


class Owner(Protocol):
    """The pool a connection belongs to, as the connection sees it."""

    @property
    def watchdog(self) -> Watchdog:
        """Closes answers silent for its timeout (before the head, and between reads)."""

    def released(self, connection: Connection) -> None:
        """``connection``'s answer was read to its end and it may be kept: it is free."""

    def lost(self, connection: Connection) -> None:
        """``connection`` closed (``connection_lost``)."""


class Connection(asyncio.Protocol):
    """One upstream connection: one request at a time, its answer pushed to a consumer.

    Args:
        owner: its pool.
        key: the origin it is pooled by.
    """

    __slots__ = (
        "_body",
        "_consumer",
        "_discarded",
        "_head",
        "_owner",
        "_watch",
        "keep_alive",
        "key",
        "reused",
        "transport",
    )

    def __init__(self, owner: Owner, key: tuple[str, int, bool]) -> None:
        self._owner = owner
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._consumer: Consumer | None = None
        self._discarded = 0  # bytes read after the consumer discarded the answer
        self._watch: Watch | None = None
        self._head: HeadReader | None = None  # while an answer's head is read
        self._body: BodyReader | None = None  # while its body is read
        self.keep_alive = False  # the answer being read leaves the connection reusable
        self.reused = False  # the pool gave it out again after an answer

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        watch = self._watch
        if watch is not None:
            watch.read = True  # what the watchdog looks at: no call per read
        try:
            body = self._body
            if body is None:
                if self._head is None:
                    self._unasked()
                    return
                data = self._read_head(data)
                body = self._body
                if not data:
                    return
                if body is None:  # the answer ended with its head
                    self._unasked()
                    return
            self._deliver(body.feed(data))
            if body.done:
                self._finished(body)
        except ProtocolError as exc:
            self._fail(exc)

    def _unasked(self) -> None:
        """Bytes between answers, or past one's end, that nobody asked for: whatever
        they are, they are not the next answer, so the connection is dropped."""
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # close: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._owner.lost(self)
        head, body = self._head, self._body
        if body is not None and body.eof():
            self._finished(body)
        elif head is not None and not head.started:
            if self.reused:
                self._fail(StaleConnection("closed a kept-alive connection"))
            else:
                self._fail(ConnectionLost("closed the connection without answering"))
        elif head is not None or body is not None:
            self._fail(ConnectionLost("closed the connection mid-answer"))

    # -- requests ----------------------------------------------------------------------

    def send(self, request: bytes, consumer: Consumer) -> None:
        """Write ``request``; its answer goes to ``consumer``."""
        assert self.transport is not None and self._head is None and self._body is None
        self._consumer = consumer
        self._head = HeadReader()
        self._discarded = 0
        self._watch = self._owner.watchdog.watch(self._timed_out)
        self.transport.write(request)

    def pause_reading(self) -> None:
        """Read nothing more until :meth:`resume_reading` (the consumer's client lags:
        its silence is not the upstream's, so the read timeout stops meanwhile)."""
        if self.transport is not None:
            self.transport.pause_reading()
            self._forget_watch()

    def resume_reading(self) -> None:
        """Read again."""
        if self.transport is not None:
            self.transport.resume_reading()
            if self._watch is None and self._consumer is not None:
                self._watch = self._owner.watchdog.watch(self._timed_out)

    def discard(self) -> None:
        """The consumer wants no more of this answer: read the rest to keep the
        connection (a relay's ``[DONE]`` comes just before the body's end)."""
        self._consumer = None

    def abort(self) -> None:
        """Drop the connection now (how a streaming upstream learns to stop)."""
        self._consumer = None
        if self.transport is not None:
            self.transport.abort()

    # -- the answer --------------------------------------------------------------------

    def _read_head(self, data: bytes) -> bytes:
        """Parse what ``data`` completes of the head; returns the body bytes after it."""
        assert self._head is not None
        read = self._head.feed(data)
        if read is None:
            return b""
        head, rest = read
        self._head = None
        self.keep_alive = head.keep_alive
        body = self._body = head.body()
        consumer = self._consumer
        if consumer is not None:
            consumer.head(head.status, head.reason, head.media_type)
        if body.done:  # no body (204, 304, Content-Length: 0)
            self._finished(body)
        return rest

    def _deliver(self, data: bytes) -> None:
        consumer = self._consumer
        if consumer is not None:
            if data:
                consumer.body(data)
            return
        # Discarded (after [DONE]): a little is the body's end; more is not worth
        # reading to keep the connection.
        self._discarded += len(data)
        if self._discarded > MAX_DISCARD:
            self._fail(ConnectionLost("discarded"))

    def _finished(self, body: BodyReader) -> None:
        """The answer is complete: tell the consumer, and give the connection back."""
        consumer = self._consumer
        self._consumer = None
        self._body = None
        self._forget_watch()
        if consumer is not None:
            consumer.end()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if self.keep_alive and not body.overrun:  # bytes past the end: not reusable
                self._owner.released(self)
            else:
                transport.close()

    def _fail(self, exc: Exception) -> None:
        consumer = self._consumer
        self._consumer = None
        self._head = None
        self._body = None
        self._forget_watch()
        if self.transport is not None:
            self.transport.abort()
        if consumer is not None:
            consumer.failed(exc)

    def _timed_out(self) -> None:
        self._watch = None  # the watchdog forgot it already
        self._fail(TimeoutError())

    def _forget_watch(self) -> None:
        if self._watch is not None:
            self._owner.watchdog.forget(self._watch)
            self._watch = None
