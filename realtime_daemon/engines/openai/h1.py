"""A streaming HTTP/1.1 client for the openai engine's upstreams, on asyncio Protocols.

A relay's cost is per upstream read. aiohttp's client hands each read to a
task through a StreamReader: a future, a wake-up and a coroutine per read,
about as much Python as everything else a relayed chunk costs. Here each
read is handed to its :class:`Consumer` inside the protocol's
``data_received``, so an answer's task wakes only when the answer ends, fails
or must wait for its client.

Only what an upstream relay needs, per RFC 9112: a POST with a body of known
length; answers framed by chunked transfer coding, Content-Length or the
connection's end; interim (1xx) answers skipped; keep-alive connections
pooled per origin, up to a limit shared by all origins. No compression
(``Accept-Encoding: identity`` is sent; a compressed answer is a
:class:`ProtocolError`), redirects, proxies or cookies. Silences (before
the head and between reads) are the engine's :class:`~.watchdog.Watchdog`'s.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import re
import ssl
from collections.abc import Callable
from typing import Protocol, cast
from urllib.parse import urlsplit

from realtime_daemon.engines.openai.watchdog import Watch, Watchdog

__all__ = [
    "KEEPALIVE",
    "MAX_DISCARD",
    "MAX_HEAD",
    "Connection",
    "ConnectionLost",
    "Consumer",
    "Origin",
    "Pool",
    "ProtocolError",
    "StaleConnection",
]

KEEPALIVE = 15.0
"""Seconds an idle pooled connection is kept."""

MAX_HEAD = 64 * 1024
"""Bytes an answer's head (status line and headers) may have."""

MAX_DISCARD = 64 * 1024
"""Bytes of a discarded answer's rest read to keep its connection; past them it is closed."""

_MAX_LINE = 4096  # a chunk-size or trailer line
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: (.*))?")

# Body framings
_NONE, _CHUNKED, _LENGTH, _UNTIL_CLOSE = range(4)
# Positions in a chunked body (non-negative: data bytes left in the chunk)
_SIZE_LINE, _DATA_END, _TRAILER = -1, -2, -3


class ProtocolError(Exception):
    """The upstream broke HTTP/1.1 (the message says how)."""


class ConnectionLost(ConnectionError):
    """The upstream closed the connection before the answer's end (the message
    says when, and names no host)."""


class StaleConnection(ConnectionLost):
    """A reused keep-alive connection closed before any byte of the answer: the
    upstream had dropped it while idle; the request may be sent again on a new one."""


class Consumer(Protocol):
    """Who an answer is handed to, from the connection's callbacks."""

    def head(self, status: int, reason: str) -> None:
        """The answer's status (the final one: interim answers are skipped)."""

    def body(self, data: bytes) -> None:
        """Bytes of the answer's body, as one read brought them (de-chunked)."""

    def end(self) -> None:
        """The body is complete."""

    def failed(self, exc: Exception) -> None:
        """The answer cannot be read to its end: ConnectionLost (StaleConnection
        among them), ProtocolError, or TimeoutError (silent past the read timeout)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: host, port, TLS; and the path and Host header of a URL."""

    host: str
    port: int
    tls: bool
    path: str
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Origin:
        """An ``http://`` or ``https://`` URL's origin.

        Raises:
            ValueError: not such a URL.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        default = 443 if tls else 80
        return cls(host, port, tls, path, shown if port == default else f"{shown}:{port}")

    @property
    def key(self) -> tuple[str, int, bool]:
        """What connections are pooled by."""
        return self.host, self.port, self.tls


class Connection(asyncio.Protocol):
    """One upstream connection: one request at a time, its answer pushed to a consumer."""

    __slots__ = (
        "_buffer",
        "_consumer",
        "_discarded",
        "_framing",
        "_head",
        "_left",
        "_pool",
        "_watch",
        "counted",
        "keep_alive",
        "key",
        "reused",
        "transport",
    )

    def __init__(self, pool: Pool, key: tuple[str, int, bool]) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._consumer: Consumer | None = None
        self._discarded = 0  # bytes read after the consumer discarded the answer
        self._watch: Watch | None = None
        self._head = False  # reading an answer's head
        self._buffer = b""  # bytes not yet parsed (a head, a chunk-size line)
        self._framing = _NONE
        self._left = 0  # body bytes left (Content-Length), or the chunked position
        self.keep_alive = False
        self.reused = False
        self.counted = False  # among the pool's open connections

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        watch = self._watch
        if watch is not None:
            watch.read = True  # Watch.touch(), without the call
        try:
            if self._head:
                data = self._read_head(data)
            elif self._framing == _NONE:
                self._unasked()
                return
            if data:
                if self._framing != _NONE:
                    self._read_body(data)
                else:
                    self._unasked()
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
        if self.counted:
            self._pool._lost(self)
        if self._framing == _UNTIL_CLOSE:
            self._finished()
        elif self._head and not self._buffer:
            if self.reused:
                self._fail(StaleConnection("closed a kept-alive connection"))
            else:
                self._fail(ConnectionLost("closed the connection without answering"))
        elif self._head or self._framing != _NONE:
            self._fail(ConnectionLost("closed the connection mid-answer"))

    # -- requests ----------------------------------------------------------------------

    def send(self, request: bytes, consumer: Consumer, watchdog: Watchdog) -> None:
        """Write ``request``; its answer goes to ``consumer``."""
        assert self.transport is not None and not self._head and self._framing == _NONE
        self._consumer = consumer
        self._head = True
        self._buffer = b""
        self._discarded = 0
        self._watch = watchdog.watch(self._timed_out)
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
                self._watch = self._pool.watchdog.watch(self._timed_out)

    def discard(self) -> None:
        """The consumer wants no more of this answer: read the rest to keep the
        connection (a relay's ``[DONE]`` comes just before the body's end)."""
        self._consumer = None

    def abort(self) -> None:
        """Drop the connection now (how a streaming upstream learns to stop)."""
        self._consumer = None
        if self.transport is not None:
            self.transport.abort()

    # -- parsing -----------------------------------------------------------------------

    def _read_head(self, data: bytes) -> bytes:
        """Parse what ``data`` completes of the head; returns the body bytes after it."""
        while True:
            buffer = self._buffer + data if self._buffer else data
            end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                if len(buffer) >= MAX_HEAD + 4:
                    raise ProtocolError(f"sent a head over {MAX_HEAD} bytes")
                self._buffer = buffer
                return b""
            self._buffer = b""
            data = buffer[end + 4 :]
            if self._start(buffer[:end]):
                return data

    def _start(self, head: bytes) -> bool:
        """Take an answer's head; False for an interim (1xx) one."""
        lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ProtocolError(f"sent a malformed status line: {lines[0][:100]!r}")
        status = int(match[2])
        if status < 200:
            if status == 101:
                raise ProtocolError("switched protocols")
            return False
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"sent a malformed header line: {line[:100]!r}")
            name = name.lower()
            value = value.strip()
            headers[name] = headers[name] + b", " + value if name in headers else value
        encoding = headers.get(b"content-encoding", b"identity").lower()
        if encoding != b"identity":
            raise ProtocolError(f"sent a {encoding.decode(errors='replace')}-encoded answer")
        connection = headers.get(b"connection", b"").lower()
        self.keep_alive = match[1] == b"1" and b"close" not in connection
        self._head = False
        transfer = headers.get(b"transfer-encoding")
        length = headers.get(b"content-length")
        if status in (204, 304):
            self._framing, self._left = _LENGTH, 0
        elif transfer is not None:
            if transfer.lower().rsplit(b",", 1)[-1].strip() != b"chunked":
                raise ProtocolError("sent a body without a length")
            self._framing, self._left = _CHUNKED, _SIZE_LINE
        elif length is not None:
            if not length.isdigit():
                raise ProtocolError(f"sent a malformed Content-Length: {length[:40]!r}")
            self._framing, self._left = _LENGTH, int(length)
        else:
            self._framing, self.keep_alive = _UNTIL_CLOSE, False
        consumer = self._consumer
        if consumer is not None:
            consumer.head(status, (match[3] or b"").decode("latin-1"))
        if self._framing == _LENGTH and self._left == 0:
            self._finished()
        return True

    def _read_body(self, data: bytes) -> None:
        framing = self._framing
        if framing == _CHUNKED:
            data = self._dechunk(data)
        elif framing == _LENGTH:
            if len(data) >= self._left:
                extra = len(data) > self._left
                data = data[: self._left]
                self._left = 0
                self._deliver(data)
                if extra:
                    self.keep_alive = False  # bytes beyond the answer: not reusable
                self._finished()
                return
            self._left -= len(data)
        self._deliver(data)

    def _dechunk(self, data: bytes) -> bytes:
        """The chunk data in ``data`` (and what was kept of the last read)."""
        if self._left == _SIZE_LINE and not self._buffer:
            # What streaming servers send, read by read: one whole chunk.
            end = data.find(b"\r\n", 0, 18)
            if end > 0 and data.endswith(b"\r\n") and _CHUNK_SIZE.fullmatch(data, 0, end):
                size = int(data[:end], 16)
                if size and size == len(data) - end - 4:
                    return data[end + 2 : -2]
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        pieces: list[bytes] = []
        at, size = 0, len(buffer)
        left = self._left
        while at < size:
            if left > 0:
                take = min(left, size - at)
                pieces.append(buffer[at : at + take])
                at += take
                left -= take
                if left == 0:
                    left = _DATA_END
            elif left == _DATA_END:
                if size - at < 2:
                    break
                if buffer[at : at + 2] != b"\r\n":
                    raise ProtocolError("sent a chunk longer than its size")
                at += 2
                left = _SIZE_LINE
            else:
                end = buffer.find(b"\r\n", at)
                if end < 0:
                    if size - at > _MAX_LINE:
                        raise ProtocolError("sent a chunk-size line that never ends")
                    break
                line = buffer[at:end]
                at = end + 2
                if left == _TRAILER:
                    if not line:
                        if at < size:
                            self.keep_alive = False  # bytes beyond the answer
                        if pieces:
                            self._deliver(b"".join(pieces))
                        self._finished()
                        return b""
                    continue  # trailer fields are not needed
                digits = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
                if _CHUNK_SIZE.fullmatch(digits) is None:
                    raise ProtocolError(f"sent a malformed chunk size: {line[:40]!r}")
                left = int(digits, 16) or _TRAILER
        self._left = left
        if at < size:
            self._buffer = buffer[at:]
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

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

    def _finished(self) -> None:
        """The answer is complete: tell the consumer, and pool the connection."""
        consumer = self._consumer
        self._consumer = None
        self._framing = _NONE
        self._forget_watch()
        if consumer is not None:
            consumer.end()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if self.keep_alive and not self._buffer:
                self._pool._release(self)
            else:
                transport.close()

    def _fail(self, exc: Exception) -> None:
        consumer = self._consumer
        self._consumer = None
        self._head = False
        self._framing = _NONE
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
            self._pool.watchdog.forget(self._watch)
            self._watch = None


class Pool:
    """Keep-alive connections to upstream origins, at most ``limit`` open at once.

    Args:
        limit: connections open at once, for all origins (connecting, busy and
            idle); requests past it wait for one, in order.
        connect_timeout: seconds to open a connection (TLS included).
        watchdog: closes answers silent for its timeout (before the head, and
            between reads).
        on_wait: called when a request starts waiting for a connection.
        keepalive: seconds an idle connection is kept.
    """

    def __init__(
        self,
        limit: int,
        *,
        connect_timeout: float,
        watchdog: Watchdog,
        on_wait: Callable[[], None] = lambda: None,
        keepalive: float = KEEPALIVE,
    ) -> None:
        self._limit = limit
        self._connect_timeout = connect_timeout
        self.watchdog = watchdog
        self._on_wait = on_wait
        self._idle: dict[tuple[str, int, bool], list[Connection]] = {}
        self._idle_watch: dict[Connection, Watch] = {}
        self._keepalive = Watchdog(keepalive)
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def send(
        self, origin: Origin, request: bytes, consumer: Consumer, *, fresh: bool = False
    ) -> Connection:
        """Send ``request`` on an idle connection to ``origin`` (a new one if
        ``fresh`` or none is idle); its answer goes to ``consumer``.

        Raises:
            OSError: the connection could not be made (``ConnectionError``,
                ``ssl.SSLError``, ``socket.gaierror``, ...).
            TimeoutError: not within the connect timeout.
        """
        while (connection := None if fresh else self._take_idle(origin.key)) is None:
            if self._open < self._limit or self._close_an_idle():
                connection = await self._connect(origin)
                break
            await self._wait()  # for a connection released, or closed
        connection.send(request, consumer, self.watchdog)
        return connection

    def _take_idle(self, key: tuple[str, int, bool]) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            self._keepalive.forget(self._idle_watch.pop(connection))
            if connection.transport is not None and not connection.transport.is_closing():
                connection.reused = True
                return connection
        return None

    async def _connect(self, origin: Origin) -> Connection:
        if self._closed:
            raise ConnectionAbortedError("the daemon is shutting down")
        self._open += 1
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.tls else None
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(self, origin.key),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        connection.counted = True
        return connection

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._on_wait()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # it was woken for a free place: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _close_an_idle(self) -> bool:
        """Close the longest-idle connection (to any origin): its place is the caller's."""
        if not self._idle_watch:
            return False
        connection = next(iter(self._idle_watch))
        self._drop_idle(connection)
        connection.counted = False
        self._open -= 1
        if connection.transport is not None:
            connection.transport.close()
        return True

    def _drop_idle(self, connection: Connection) -> None:
        watch = self._idle_watch.pop(connection, None)
        if watch is None:
            return
        self._keepalive.forget(watch)
        idle = self._idle[connection.key]
        idle.remove(connection)
        if not idle:
            del self._idle[connection.key]

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _release(self, connection: Connection) -> None:
        """An answer was read to its end: keep its connection for the next request."""
        if self._closed:
            assert connection.transport is not None
            connection.transport.close()
            return
        self._idle.setdefault(connection.key, []).append(connection)
        self._idle_watch[connection] = self._keepalive.watch(connection.abort)
        self._wake()

    def _lost(self, connection: Connection) -> None:
        """A connection closed (``connection_lost``): its place is free."""
        self._drop_idle(connection)
        connection.counted = False
        self._open -= 1
        self._wake()

    def close(self) -> None:
        """Close every idle connection, and those released from now on."""
        self._closed = True
        self._keepalive.close()
        for connections in list(self._idle.values()):
            for connection in list(connections):
                self._drop_idle(connection)
                if connection.transport is not None:
                    connection.transport.close()
