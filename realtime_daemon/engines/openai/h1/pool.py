"""Keep-alive connections to upstream origins, a limit on those open, and the requests waiting.

The :class:`Pool` alone counts the open connections: those it connects, less
those it closes to make place and those that tell it they closed
(:meth:`Pool.lost`). A connection whose answer was read to its end comes
back through :meth:`Pool.released` and waits, idle, for the next request to
its origin, for at most the keep-alive time. Requests past the limit wait in
order for a place.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from realtime_daemon.engines.openai.h1.connection import Connection, Consumer
from realtime_daemon.engines.openai.watchdog import Watch, Watchdog

__all__ = ["KEEPALIVE", "Origin", "Pool"]

KEEPALIVE = 15.0
"""Seconds an idle pooled connection is kept."""


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


class Pool:
    """Keep-alive connections to upstream origins, at most ``limit`` open at once.

    It is the :class:`~.connection.Owner` of the connections it makes.

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
        self._idle_watch: dict[Connection, Watch] = {}  # oldest first
        self._keepalive = Watchdog(keepalive)
        self._open: set[Connection] = set()  # connected, not yet closed or given up
        self._connecting = 0  # places taken by connections being made
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
            if len(self._open) + self._connecting < self._limit or self._close_an_idle():
                connection = await self._connect(origin)
                break
            await self._wait()  # for a connection released, or closed
        connection.send(request, consumer)
        return connection

    # -- the Owner of its connections ------------------------------------------------

    def released(self, connection: Connection) -> None:
        """An answer was read to its end: keep its connection for the next request."""
        if self._closed:
            assert connection.transport is not None
            connection.transport.close()
            return
        self._idle.setdefault(connection.key, []).append(connection)
        self._idle_watch[connection] = self._keepalive.watch(connection.abort)
        self._wake()

    def lost(self, connection: Connection) -> None:
        """A connection closed: its place is free (unless the pool gave it up already)."""
        if connection in self._open:
            self._open.remove(connection)
            self._drop_idle(connection)
            self._wake()

    # -- places ------------------------------------------------------------------------

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
        self._connecting += 1
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
            self._connecting -= 1
            self._wake()
            raise
        self._connecting -= 1
        self._open.add(connection)
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
        self._open.discard(connection)
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

    def close(self) -> None:
        """Close every idle connection, and those released from now on."""
        self._closed = True
        self._keepalive.close()
        for connections in list(self._idle.values()):
            for connection in list(connections):
                self._drop_idle(connection)
                if connection.transport is not None:
                    connection.transport.close()
