"""The one waiter primitive: woken one or all, and safe to cancel."""

from __future__ import annotations

import asyncio

from realtime_daemon.engines.waiters import Waiters


async def test_wake_one_wakes_the_longest_waiting_only() -> None:
    """wake_one wakes the first waiter and leaves the second waiting."""
    waiters = Waiters()
    first = asyncio.create_task(waiters.wait())
    second = asyncio.create_task(waiters.wait())
    await asyncio.sleep(0)  # both start waiting (one loop pass, not a timing guess)
    waiters.wake_one()
    async with asyncio.timeout(2):
        await first
    assert not second.done() and len(waiters) == 1
    waiters.wake_all()
    async with asyncio.timeout(2):
        await second
    assert not waiters


async def test_a_cancelled_waiter_leaves_the_list() -> None:
    """A waiter cancelled while it waits is no longer in the list."""
    waiters = Waiters()
    task = asyncio.create_task(waiters.wait())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait((task,))
    assert task.cancelled() and not waiters


async def test_a_wake_up_is_handed_on_by_a_waiter_cancelled_with_it() -> None:
    """A waiter woken and cancelled in the same pass hands its wake-up to the next."""
    waiters = Waiters()
    woken = asyncio.create_task(waiters.wait())
    next_one = asyncio.create_task(waiters.wait())
    await asyncio.sleep(0)
    waiters.wake_one()
    woken.cancel()
    async with asyncio.timeout(2):
        await next_one
    assert woken.cancelled()
