"""The one waiter primitive: tasks waiting for something, woken one at a time or all.

It lives in the engines layer, the lowest layer that runs on an event loop
(wire and config are types and settings only), so that the engines
(``Context.stopped``), the session (the request channel, the outbox) and
the layers above them can all import it.
"""

from __future__ import annotations

import asyncio

__all__ = ["Waiters"]


class Waiters(list["asyncio.Future[None]"]):
    """Tasks waiting for a condition, as a list of futures: :meth:`wait`, then woken.

    A waiter is woken, not told the condition holds: callers wait in a loop
    that checks it (``while not ready: await waiters.wait()``). It is a
    list and adds nothing to one (an idle connection holds several, and an
    empty deque would preallocate some 600 bytes).
    """

    __slots__ = ()

    async def wait(self) -> None:
        """Wait until woken by :meth:`wake_one` or :meth:`wake_all`.

        Cancellation-safe: a waiter cancelled while it waits leaves the list;
        one woken and cancelled in the same pass of the loop hands its wake-up
        on to the next waiter, so a :meth:`wake_one` is never lost.
        """
        future = asyncio.get_running_loop().create_future()
        self.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():
                if future in self:
                    self.remove(future)
            else:
                self.wake_one()
            raise

    def wake_one(self) -> None:
        """Wake the longest waiting task, if any."""
        while self:
            future = self.pop(0)
            if not future.done():
                future.set_result(None)
                return

    def wake_all(self) -> None:
        """Wake every waiting task."""
        pending = self[:]
        self.clear()
        for future in pending:
            if not future.done():
                future.set_result(None)
