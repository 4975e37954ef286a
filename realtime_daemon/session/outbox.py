"""A session's outgoing envelopes: numbered here, and nowhere else.

Every envelope of a connection is numbered by :meth:`Outbox.write` ("1",
"2", "3", ... in the order they are written; a dialect says where in the
frame the number goes), so the numbering holds however many answers write
at once. Writing is synchronous (the sink coalesces frames into one send per
event-loop pass), so any task or callback may write; :attr:`Outbox.due`
says when the writer must wait, and :meth:`Outbox.settle` is the one place
it waits: while the client lags (backpressure, up to ``send_timeout``), and
once per time slice, so that a fast answer yields to other answers and
other connections.

A resumable session's outbox also keeps its latest envelopes
(:class:`~.replay.Replay`) and can lose its sink (:meth:`Outbox.detach`):
the session goes on writing into the buffer, its writers wait when the
buffer is full, and :meth:`Outbox.attach` replays what a new connection
missed before it goes live.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from realtime_daemon.engines.waiters import Waiters
from realtime_daemon.session.replay import Replay

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

    def hold(self) -> None:
        """Schedule no flush for the next writes: the caller flushes."""

    def flush(self) -> None:
        """Write the queued frames now."""

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

    __slots__ = (
        "_loop",
        "_over",
        "_reattach",
        "_send_timeout",
        "_sink",
        "_slice_end",
        "count",
        "replay",
    )

    def __init__(self, sink: Sink, send_timeout: float) -> None:
        self._sink: Sink | None = sink
        self._send_timeout = send_timeout
        self._loop = asyncio.get_running_loop()
        self._slice_end = 0.0
        self._reattach: Waiters | None = None  # writers waiting for a sink (made on first use)
        self._over = False  # the session was given up: no sink will come back
        self.count = 0
        self.replay: Replay | None = None

    def write(self, head: bytes, tail: bytes) -> None:
        """Send the frame ``head + <its number> + tail`` (after the ones written before):
        the :class:`~realtime_daemon.dialects.FrameWriter` every dialect writes through."""
        self.count += 1
        payload = b"%b%d%b" % (head, self.count, tail)
        sink, replay = self._sink, self.replay
        if replay is not None:
            replay.add(self.count, payload, ring=sink is not None)
        if sink is not None:
            sink.write(payload)

    @property
    def due(self) -> bool:
        """Whether the writer must ``await settle()`` before writing more: the client
        lags or is gone, a held session's buffer is full, or the time slice is over.
        Most batches need no wait, and so cost no coroutine."""
        # The clock first: after a flush() it answers alone.
        if self._sink is not None and self._loop.time() >= self._slice_end:
            return True
        return self.lagging

    def hold(self) -> None:
        """The caller will :meth:`flush` after its next writes (no flush is scheduled
        for them: a relaying engine writes what one read brought, then flushes)."""
        if self._sink is not None:
            self._sink.hold()

    @property
    def lagging(self) -> bool:
        """Whether a writer must ``await settle()`` before writing more (the time
        slice aside): the client lags or is gone, or a held session's buffer is full."""
        sink, replay = self._sink, self.replay
        if sink is None:
            return replay is None or replay.full
        return sink.paused or sink.closing

    def flush(self) -> None:
        """Send what was written now, not at the end of the event-loop pass: the writer
        handed over all its engine had read, and returns to the loop to wait for more.
        So whoever writes next starts a fresh time slice, without yielding first."""
        self._slice_end = 0.0
        if self._sink is not None:
            self._sink.flush()

    async def settle(self) -> None:
        """Wait while the client lags, and yield once per time slice.

        A resumable session whose connection is gone waits only while its
        replay buffer is full, until a connection is attached again.

        Raises:
            PeerGone: the connection is gone (and the session is not held).
            ClientTooSlow: the client did not read for ``send_timeout``.
        """
        while True:
            sink = self._sink
            if sink is None or sink.closing:
                if self.replay is None or self._over:
                    raise PeerGone
                if sink is None and not self.replay.full:
                    break  # held: the buffer takes more
                if self._reattach is None:
                    self._reattach = Waiters()
                await self._reattach.wait()
                continue
            if sink.paused:
                try:
                    async with asyncio.timeout(self._send_timeout):
                        await sink.drain()
                except ConnectionError:
                    continue  # closing now: see above
                except TimeoutError:
                    sink.abort()
                    if self.replay is None:
                        raise ClientTooSlow from None
                    continue  # a held session outlives a stalled connection
            break
        # Fair scheduling: a fast engine and a client that keeps up would
        # otherwise never yield, and starve every other answer and connection.
        if self._loop.time() >= self._slice_end:
            if self._slice_end:
                await asyncio.sleep(0)
            self._slice_end = self._loop.time() + TIME_SLICE

    # -- resume ------------------------------------------------------------------------

    def keep(self, limit: int) -> None:
        """Keep the latest envelopes, up to ``limit`` bytes, from now on (resumable)."""
        if self.replay is None:
            self.replay = Replay(limit)

    def detach(self) -> None:
        """The connection is gone: write into the replay buffer only."""
        self._sink = None
        self._wake()  # writers waiting on the lost connection go on into the buffer

    def attach(self, sink: Sink, after: int) -> int:
        """Go live on ``sink``, first replaying the envelopes after ``after``.

        Returns:
            how many envelopes were replayed.

        Raises:
            Gap: the envelopes after ``after`` are not all held.
        """
        assert self.replay is not None
        missed = self.replay.after(after, self.count)
        self.replay.drop_through(after)
        for payload in missed:
            sink.write(payload)
        self._sink = sink
        self._wake()
        return len(missed)

    def give_up(self) -> None:
        """No connection will come back: writers waiting for one get PeerGone."""
        self._over = True
        self._wake()

    def _wake(self) -> None:
        if self._reattach is not None:
            self._reattach.wake_all()
