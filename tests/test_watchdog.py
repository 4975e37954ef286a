"""The read-timeout watchdog on its own: silent streams are closed, busy ones are not."""

from __future__ import annotations

import asyncio

from realtime_daemon.engines.openai.watchdog import SWEEPS, Watchdog


async def test_a_silent_stream_is_closed_within_a_sweep_of_its_timeout() -> None:
    """A stream with no read for the timeout is closed, and marked expired."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    dog = Watchdog(0.08)
    started = loop.time()
    watch = dog.watch(lambda: closed.set_result(loop.time()))
    async with asyncio.timeout(2):
        when = await closed
    assert watch.expired
    assert 0.08 <= when - started <= 0.08 * (1 + 1 / SWEEPS) + 0.05


async def test_a_stream_that_reads_is_left_alone() -> None:
    """Reads (touch) keep a stream open while a silent one beside it is closed."""
    silent_closed = asyncio.Event()
    dog = Watchdog(0.08)
    busy = dog.watch(lambda: None)
    silent = dog.watch(silent_closed.set)
    async with asyncio.timeout(2):
        while not silent_closed.is_set():
            busy.touch()
            await asyncio.sleep(0.01)
    assert silent.expired and not busy.expired
    dog.forget(busy)
    dog.close()
