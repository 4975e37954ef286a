"""A session's outgoing envelopes: numbered here, and nowhere else.

Every envelope of a connection takes its ``id`` from :meth:`Outbox.next_id`
("1", "2", "3", ... in the order they are written), so the numbering holds
however many answers write at once. Writing is synchronous (the sink
coalesces frames into one send per event-loop pass); :meth:`Outbox.settle`
is the one place a writer waits: while the client lags (backpressure, up to
``send_timeout``), and once per time slice, so that a fast answer yields to
other answers and other connections.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["TIME_SLICE", "ClientTooSlow", "Outbox", "PeerGone", "Sink"]

TIME_SLICE = 0.001
"""Seconds a connection may send without yielding to the loop (fair scheduling)."""


class Sink(Protocol):
    """Where frames go: the transport's coalescing output (:class:`~.output.Output`)."""

    @property
    def closing(self) -> bool:
        """Whether the connection can take no more bytes."""

    @property
    def paused(self) -> bool:
        """Whether the client lags (the transport is over its high-water mark)."""

    def write(self, payload: bytes) -> None:
        """Queue one Text frame."""

    async def drain(self) -> None:
        """Wait until the client caught up; ConnectionError if it is gone."""

    def abort(self) -> None:
        """Drop the connection at once."""


class PeerGone(Exception):
    """The connection is gone: nothing more can be sent."""


class ClientTooSlow(Exception):
    """The client read nothing for ``send_timeout`` seconds; the connection was dropped."""


class Outbox:
    """Numbers and writes one connection's envelopes.

    Args:
        sink: where the frames go.
        send_timeout: how long a lagging client may keep a writer waiting.

    Attributes:
        count: envelopes numbered so far (the last ``id`` given).
    """

    __slots__ = ("_loop", "_send_timeout", "_sink", "_slice_end", "count")

    def __init__(self, sink: Sink, send_timeout: float) -> None:
        self._sink = sink
        self._send_timeout = send_timeout
        self._loop = asyncio.get_running_loop()
        self._slice_end = 0.0
        self.count = 0

    def next_id(self) -> str:
        """The next envelope's id."""
        self.count += 1
        return str(self.count)

    def write(self, payload: bytes) -> bool:
        """Send one encoded envelope (after the ones written before it).

        Returns:
            whether the writer must ``await settle()`` before writing more:
            the client lags or is gone, or its time slice is over. Most
            writes need no wait, and so cost no coroutine.
        """
        sink = self._sink
        sink.write(payload)
        return sink.paused or sink.closing or self._loop.time() >= self._slice_end

    async def settle(self) -> None:
        """Wait while the client lags, and yield once per time slice.

        Raises:
            PeerGone: the connection is gone.
            ClientTooSlow: the client did not read for ``send_timeout``.
        """
        sink = self._sink
        if sink.closing:
            raise PeerGone
        if sink.paused:
            try:
                async with asyncio.timeout(self._send_timeout):
                    await sink.drain()
            except ConnectionError:
                raise PeerGone from None
            except TimeoutError:
                sink.abort()
                raise ClientTooSlow from None
        # Fair scheduling: a fast engine and a client that keeps up would
        # otherwise never yield, and starve every other answer and connection.
        if self._loop.time() >= self._slice_end:
            if self._slice_end:
                await asyncio.sleep(0)
            self._slice_end = self._loop.time() + TIME_SLICE
