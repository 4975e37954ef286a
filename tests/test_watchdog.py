"""The read-timeout watchdog on its own: silent streams are closed, busy ones are not."""

from __future__ import annotations

import asyncio

from realtime_daemon.engines.openai.watchdog import SWEEPS, Watchdog


async def test_a_silent_stream_is_closed_within_a_sweep_of_its_timeout() -> None:
    """A stream with no read for the timeout has its close called, within a sweep of it."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    dog = Watchdog(0.08)
    started = loop.time()
    dog.watch(lambda: closed.set_result(loop.time()))
    async with asyncio.timeout(2):
        when = await closed
    assert 0.08 <= when - started <= 0.08 * (1 + 1 / SWEEPS) + 0.05


async def test_a_stream_that_reads_is_left_alone() -> None:
    """Reads keep a stream open while a silent one beside it is closed."""
    loop = asyncio.get_running_loop()
    busy_closed = asyncio.Event()
    silent_closed = asyncio.Event()
    dog = Watchdog(0.08)
    busy = dog.watch(busy_closed.set)
    dog.watch(silent_closed.set)
    reads: asyncio.TimerHandle

    def read() -> None:
        """The busy stream's reads, every 10 ms of the loop's clock, as its reader flags them."""
        nonlocal reads
        busy.read = True
        reads = loop.call_later(0.01, read)

    reads = loop.call_later(0.01, read)
    try:
        async with asyncio.timeout(2):
            await silent_closed.wait()
    finally:
        reads.cancel()
    assert not busy_closed.is_set()
    dog.forget(busy)
    dog.close()
