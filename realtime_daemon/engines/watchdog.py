"""Read timeouts for many upstream streams with one timer, not one timer per read.

aiohttp's ``sock_read`` timeout re-arms a timer on every read of every
response; at thousands of chunks a second that is a measurable share of a
relay's time. A :class:`Watchdog` instead sweeps the streams it watches a
few times per timeout and closes those silent for longer than it: a
stream's read only stores the time. A silent stream is closed between
``timeout`` and ``timeout * (1 + 1/SWEEPS)`` seconds after its last read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["SWEEPS", "Watch", "Watchdog"]

SWEEPS = 8
"""Sweeps per timeout."""


class Watch:
    """One watched stream: ``touch()`` on each read; ``expired`` once it was closed."""

    __slots__ = ("_loop", "close", "expired", "last")

    def __init__(self, close: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        self.close = close
        self._loop = loop
        self.last = loop.time()
        self.expired = False

    def touch(self) -> None:
        """The stream was read just now."""
        self.last = self._loop.time()


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
        loop = asyncio.get_running_loop()
        watch = Watch(close, loop)
        self._watched.add(watch)
        if self._timer is None:
            self._timer = loop.call_later(self._timeout / SWEEPS, self._sweep)
        return watch

    def forget(self, watch: Watch) -> None:
        """The stream ended."""
        self._watched.discard(watch)

    def _sweep(self) -> None:
        self._timer = None
        if not self._watched:
            return
        loop = asyncio.get_running_loop()
        silent_since = loop.time() - self._timeout
        for watch in [w for w in self._watched if w.last < silent_since]:
            self._watched.discard(watch)
            watch.expired = True
            watch.close()
        if self._watched:
            self._timer = loop.call_later(self._timeout / SWEEPS, self._sweep)

    def close(self) -> None:
        """Stop sweeping (the engine is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
