"""The request channel on its own: decoding, order, bound, end of stream."""

from __future__ import annotations

import asyncio
import json

import pytest

from realtime_daemon.session.channel import ChannelClosed, RequestChannel
from realtime_daemon.wire.chat import FrameError

from .conftest import request


def frame(text: str) -> bytes:
    return json.dumps(request(text)).encode()


class Recorder:
    """A ChannelObserver that records what the channel tells it."""

    def __init__(self) -> None:
        self.depths: list[int] = []
        self.pushbacks = 0
        self.pushed_back_once = asyncio.Event()

    def took(self, depth: int) -> None:
        self.depths.append(depth)

    def pushed_back(self) -> None:
        self.pushbacks += 1
        self.pushed_back_once.set()


async def test_requests_come_out_decoded_in_order() -> None:
    """Frames come out as typed requests, in the order they were put, with their bytes."""
    channel = RequestChannel(8)
    frames = [frame(f"p{n}") for n in range(5)]
    for data in frames:
        await channel.put(data)
    channel.close()
    got = [r async for r in channel]
    assert [r.request.chat.messages[0].content for r in got] == [f"p{n}" for n in range(5)]
    assert [r.request.raw for r in got] == frames


async def test_malformed_frame_is_refused_and_not_queued() -> None:
    """A frame that does not decode raises FrameError and takes no room."""
    channel = RequestChannel(1)
    with pytest.raises(FrameError, match="missing required field `messages`"):
        await channel.put(b'{"model": "m"}')
    assert len(channel) == 0
    assert channel.received == 0


async def test_put_waits_for_room_and_resumes_when_a_request_is_taken() -> None:
    """A put into a full channel waits until the consumer takes a request."""
    recorder = Recorder()
    channel = RequestChannel(1, observer=recorder)
    await channel.put(frame("a"))
    blocked = asyncio.create_task(channel.put(frame("b")))
    async with asyncio.timeout(2):
        await recorder.pushed_back_once.wait()
        assert not blocked.done()
        first = await anext(channel)
        await blocked
    assert first.request.chat.messages[0].content == "a"
    assert recorder.pushbacks == 1
    assert recorder.depths == [1]  # never more than one queued


async def test_close_ends_iteration_after_queued_requests() -> None:
    """After close, queued requests are still delivered, then iteration stops."""
    channel = RequestChannel(4)
    await channel.put(frame("a"))
    channel.close()
    assert [r.request.chat.messages[0].content async for r in channel] == ["a"]


async def test_close_fails_a_put_waiting_for_room() -> None:
    """close() fails a put that waits for room; what was queued is still delivered."""
    recorder = Recorder()
    channel = RequestChannel(1, observer=recorder)
    await channel.put(frame("b"))
    producer = asyncio.create_task(channel.put(frame("c")))
    async with asyncio.timeout(2):
        await recorder.pushed_back_once.wait()
        channel.close()
        with pytest.raises(ChannelClosed):
            await producer
    assert [r.request.chat.messages[0].content async for r in channel] == ["b"]


async def test_context_stopped_wakes_every_waiter_and_survives_a_cancelled_one() -> None:
    """stopped() returns for all its waiters once stop_generating() is called."""
    from realtime_daemon.engines.base import Context

    context = Context("s")
    first = asyncio.create_task(context.stopped())
    second = asyncio.create_task(context.stopped())
    cancelled = asyncio.create_task(context.stopped())
    await asyncio.sleep(0)  # let all three start waiting (one loop pass, not a timing guess)
    cancelled.cancel()
    context.stop_generating()
    async with asyncio.timeout(2):
        await first
        await second
    assert context.is_stopped() and cancelled.cancelled()
    await context.stopped()  # already stopped: returns at once
