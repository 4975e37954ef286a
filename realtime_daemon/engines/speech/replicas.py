"""An OpenAI-compatible speech endpoint's replicas: their request heads, one pool, attempts.

What the openai speech-to-text and text-to-speech engines share: each
replica's request head made once, one keep-alive :class:`~..openai.h1.Pool`
made on first use (inside the running loop), the order replicas are tried in
(each request starting at the next one), and one attempt on a replica (a
kept-alive connection found closed is tried once more, on a new one).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from realtime_daemon import __version__
from realtime_daemon.engines.openai.h1 import Connection, Consumer, Origin, Pool, StaleConnection
from realtime_daemon.engines.openai.watchdog import Watchdog
from realtime_daemon.engines.speech.answer import AttemptFailed

__all__ = ["MAX_CONNECTIONS", "Answer", "Replicas", "connection_failure"]

MAX_CONNECTIONS = 256
"""Connections to one engine's replicas at most (connecting, busy and idle)."""

T_co = TypeVar("T_co", covariant=True)


class Answer(Consumer, Protocol[T_co]):
    """One attempt's answer, as the engines' answer readers are."""

    connection: Connection | None

    def failure(self, code: str, what: str, *, retry: bool | None = None) -> AttemptFailed:
        """This attempt's failure, naming the replica and not its URL."""
        ...

    async def result(self) -> T_co:
        """What the answer said, once it ended.

        Raises:
            AttemptFailed: it failed.
            StaleConnection: a kept-alive connection was found closed.
        """
        ...

    def close(self) -> None:
        """The attempt is over: a connection not read to its end is not kept."""
        ...


class Replicas:
    """One engine's replicas.

    Args:
        urls: the replicas' base URLs (``http://host:port/v1``).
        endpoint: the path under each (``/audio/speech``).
        headers: the request's own header lines, without the common ones.
        api_key: sent as ``Authorization: Bearer``, if any.
        head_end: what the head ends with before each request's own part.
        timeout: the pool's connect timeout and its watchdog's silence.
    """

    def __init__(
        self,
        urls: Iterable[str],
        endpoint: str,
        headers: Iterable[bytes],
        api_key: str | None,
        head_end: bytes,
        timeout: float,
    ) -> None:
        self.urls = tuple(url.rstrip("/") + endpoint for url in urls)
        self.origins = tuple(Origin.parse(url) for url in self.urls)
        self._timeout = timeout
        self._turn = itertools.count()
        self._pool: Pool | None = None
        lines = [*headers, b"Accept-Encoding: identity"]
        lines.append(b"User-Agent: realtime-daemon/" + __version__.encode())
        if api_key:
            lines.append(b"Authorization: Bearer " + api_key.encode())
        self.heads = tuple(
            b"POST %b HTTP/1.1\r\nHost: %b\r\n%b\r\n%b"
            % (o.path.encode(), o.host_header.encode("idna"), b"\r\n".join(lines), head_end)
            for o in self.origins
        )

    def __len__(self) -> int:
        return len(self.urls)

    def order(self) -> list[int]:
        """The replicas in the order one request tries them: from the next one on."""
        start = next(self._turn) % len(self.urls)
        return [*range(start, len(self.urls)), *range(start)]

    def connections(self) -> Pool:
        """The pool, made on first use (inside the running loop)."""
        if self._pool is None:
            self._pool = Pool(
                MAX_CONNECTIONS, connect_timeout=self._timeout, watchdog=Watchdog(self._timeout)
            )
        return self._pool

    def close(self) -> None:
        """Close the pool (a later request makes a new one)."""
        if self._pool is not None:
            self._pool.watchdog.close()
            self._pool.close()
            self._pool = None

    async def attempt(self, replica: int, data: bytes, answer: Callable[[], Answer[T_co]]) -> T_co:
        """Send ``data`` (the whole request) to ``replica``; what its answer says.

        Raises:
            AttemptFailed: this replica failed.
        """
        fresh = False
        while True:
            reading = answer()
            try:
                try:
                    pool = self.connections()
                    reading.connection = await pool.send(
                        self.origins[replica], data, reading, fresh=fresh
                    )
                except OSError as exc:
                    what = f"connection failed: {connection_failure(exc)}"
                    raise reading.failure("upstream_unavailable", what) from None
                return await reading.result()
            except StaleConnection:
                fresh = True
            finally:
                reading.close()


def connection_failure(exc: OSError) -> str:
    """A connection failure in words that name no host."""
    errno = exc.errno or 0
    reason = os.strerror(errno) if errno > 0 else None
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
