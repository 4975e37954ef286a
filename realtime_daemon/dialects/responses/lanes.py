"""A connection's lanes (``stream_id``): one response runs on each, the next ones wait.

The dialect takes a lane for a response and frees it when the response
ends. A create for a lane that is taken gets its place in the lane's line
at once (:meth:`Lanes.queue`) and waits for its turn as a
:class:`~realtime_daemon.wire.events.Work` of the session whose job is
:meth:`Turn.wait` (the dialect's one await: a future its lane's end
resolves). Freeing a lane hands it to the first in line at once, so that
no later create takes it first.
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["HANDED", "Lanes", "Turn"]

HANDED = ""
"""What a lane runs between its hand-over and the waiting create taking it."""


class Turn:
    """One create's place in its lane's line."""

    __slots__ = ("_future", "ready")

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        self.ready = False

    def come(self) -> None:
        self.ready = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    async def wait(self) -> None:
        """Return once the lane is this create's (it then runs :data:`HANDED`)."""
        if not self.ready:
            self._future = asyncio.get_running_loop().create_future()
            await self._future


class Lanes:
    """Which response each lane runs, and the creates in line for each."""

    __slots__ = ("_lines", "_running")

    def __init__(self) -> None:
        self._running: dict[str | None, str] = {}
        self._lines: dict[str | None, collections.deque[Turn]] = {}

    def running(self, lane: str | None) -> str | None:
        """The response ``lane`` runs (:data:`HANDED` while handed over), if any."""
        return self._running.get(lane)

    def queue(self, lane: str | None) -> Turn:
        """A place at the end of ``lane``'s line."""
        turn = Turn()
        self._lines.setdefault(lane, collections.deque()).append(turn)
        return turn

    def waiting(self, lane: str | None) -> int:
        return len(self._lines.get(lane, ()))

    def take(self, lane: str | None, response_id: str) -> None:
        self._running[lane] = response_id

    def free(self, lane: str | None, response_id: str) -> None:
        """``response_id`` is done with ``lane``: the first in line gets it."""
        if self._running.get(lane) != response_id:
            return
        line = self._lines.get(lane)
        if line:
            self._running[lane] = HANDED
            line.popleft().come()
            return
        self._lines.pop(lane, None)
        del self._running[lane]
