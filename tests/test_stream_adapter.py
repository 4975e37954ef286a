"""Bidirectional engines (``generate(requests, context)``) through the adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from realtime_daemon.engines.base import Context
from realtime_daemon.server.app import STATE
from realtime_daemon.wire.chat import Envelope, Request

from .conftest import PATH, StartServer, content, receive_answer, receive_close, receive_envelope
from .conftest import request as chat
from .engines import TurnCounter


async def test_state_is_kept_across_the_requests_of_a_session(serve_engine: StartServer) -> None:
    """One generate per session: its state carries from one request to the next."""
    engine = TurnCounter()
    client = await serve_engine(engine)
    for _ in range(2):
        async with client.ws_connect(PATH) as ws:
            await ws.send_json(chat("a"))
            await ws.send_json(chat("b"))
            first, second = await receive_answer(ws), await receive_answer(ws)
            assert (content(first), content(second)) == ("turn 1: a", "turn 2: b")
    assert engine.sessions == 2


async def test_cancel_ends_the_generator_and_the_next_request_starts_afresh(
    serve_engine: StartServer,
) -> None:
    """request.cancel mid-answer closes the session's generate; the next request gets a new one."""
    engine = TurnCounter()
    client = await serve_engine(engine)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(chat("wait", request_id="w"))
        assert content([await receive_envelope(ws)]) == "turn 1: wait"
        await ws.send_json({"type": "request.cancel", "request_id": "w"})
        assert (await receive_envelope(ws))["event"] == "cancelled"
        await ws.send_json(chat("again"))
        assert content(await receive_answer(ws)) == "turn 1: again"
    assert engine.sessions == 2
    assert engine.closed >= 1


class OneShot:
    """Answers one request, then returns: the session ends."""

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        async for _ in requests:
            yield Envelope(comment=["only once"])
            return


async def test_generate_returning_ends_the_session_1000(serve_engine: StartServer) -> None:
    """When generate returns, the connection closes 1000 "stream complete"."""
    client = await serve_engine(OneShot())
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(chat("x"))
        assert (await receive_envelope(ws))["comment"] == ["only once"]
        await ws.send_json(chat("y"))
        assert await receive_close(ws) == (1000, "stream complete")


async def test_session_tasks_end_with_the_session(serve_engine: StartServer) -> None:
    """The adapter's task for a session ends, its generator closed, when the connection does."""
    engine = TurnCounter()
    client = await serve_engine(engine)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(chat("a"))
        await receive_answer(ws)
        assert engine.closed == 0
    async with asyncio.timeout(2):
        await client.app[STATE].connections.wait_closed()
    assert engine.closed == 1
