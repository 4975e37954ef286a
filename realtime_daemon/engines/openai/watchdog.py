"""Read timeouts for many upstream streams with one timer, not one timer per read.

A timer re-armed on every read of every stream is, at thousands of reads a
second, a measurable share of a relay's time. A :class:`Watchdog` instead
sweeps the streams it watches a few times per timeout and closes those
silent for longer than it: a stream's read only sets a flag. A silent stream
is closed between ``timeout`` and ``timeout * (1 + 1/SWEEPS)`` seconds after
its last read (after SWEEPS sweeps without one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["SWEEPS", "Watch", "Watchdog"]

SWEEPS = 8
"""Sweeps per timeout."""


class Watch:
    """One watched stream: its reader sets ``read`` on each read (an attribute, not a
    call: it is done per read); ``close`` is called once it has been silent too long."""

    __slots__ = ("close", "read", "silent")

    def __init__(self, close: Callable[[], None]) -> None:
        self.close = close
        self.read = True  # read since the last sweep (a new stream counts as read)
        self.silent = 0  # sweeps since the last read


class Watchdog:
    """Closes watched streams silent for ``timeout`` seconds.

    Args:
        timeout: seconds a stream may go without a read.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._watched: set[Watch] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, close: Callable[[], None]) -> Watch:
        """Watch a stream from now on; ``close`` ends it if it falls silent."""
        watch = Watch(close)
        self._watched.add(watch)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._timeout / SWEEPS, self._sweep)
        return watch

    def forget(self, watch: Watch) -> None:
        """The stream ended."""
        self._watched.discard(watch)

    def _sweep(self) -> None:
        self._timer = None
        if not self._watched:
            return
        silent = []
        for watch in self._watched:
            if watch.read:
                watch.read = False
                watch.silent = 0
            else:
                watch.silent += 1
                if watch.silent >= SWEEPS:
                    silent.append(watch)
        for watch in silent:
            self._watched.discard(watch)
            watch.close()
        if self._watched:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._timeout / SWEEPS, self._sweep)

    def close(self) -> None:
        """Stop sweeping (the engine is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
