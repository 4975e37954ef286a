"""Backpressure and cancellation: what the daemon does when one side does not keep up."""

from __future__ import annotations

import asyncio
import json

from aiohttp import WSCloseCode

from realtime_daemon.server.app import STATE

from .conftest import PATH, StartServer, content, receive_answer, request
from .engines import EndlessEngine, GatedEngine
from .rawws import RawWebSocket
from .test_metrics import requests, sample_reaches, scrape


async def test_full_channel_stops_the_reader(serve_engine: StartServer) -> None:
    """With the channel full, the reader stops reading frames; they wait in the socket."""
    engine = GatedEngine()
    client = await serve_engine(engine, request_queue_size=2)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("prompt 0"))
        async with asyncio.timeout(2):
            await engine.started.wait()
        for n in range(1, 10):
            await ws.send_json(request(f"prompt {n}"))
        # One request being answered, two queued, the fourth decoded and
        # waiting for room (one pushback), the other six never read from the
        # socket: while the engine is held nothing is answered.
        pushbacks = "realtime_daemon_request_queue_pushbacks_total"
        during = await sample_reaches(client, pushbacks, 1)
        assert during[(pushbacks, ())] == 1
        assert requests(during, "completed") == 0
        engine.gate.set()
        answers = [content(await receive_answer(ws)) for _ in range(10)]
    assert answers == [f"prompt {n}" for n in range(10)]
    after = await scrape(client)
    assert after[("realtime_daemon_request_queue_high_water", ())] == 2


async def test_client_close_mid_answer_stops_the_engine(serve_engine: StartServer) -> None:
    """A client Close mid-answer stops the engine's context and ends its generator."""
    engine = EndlessEngine()
    client = await serve_engine(engine)
    ws = await client.ws_connect(PATH)
    await ws.send_json(request("long answer"))
    async with asyncio.timeout(2):
        await engine.streaming.wait()
        await ws.close()
        await engine.ended.wait()
    assert ws.close_code == WSCloseCode.OK
    assert engine.stopped_when_ended is True


async def test_vanished_client_stops_the_engine_and_leaves_no_task(
    serve_engine: StartServer,
) -> None:
    """A reset mid-answer stops the engine, and every task of the connection ends."""
    engine = EndlessEngine()
    client = await serve_engine(engine)
    before = asyncio.all_tasks()
    raw = await RawWebSocket.connect(client.host, client.port, PATH)
    raw.send_frame(json.dumps(request("long answer")).encode())
    async with asyncio.timeout(2):
        await engine.streaming.wait()
        connection_tasks = asyncio.all_tasks() - before
        raw.abort()
        await engine.ended.wait()
        await client.app[STATE].connections.wait_closed()
        await asyncio.wait(connection_tasks - {asyncio.current_task()})
    assert engine.stopped_when_ended is True
    assert all(task.done() for task in connection_tasks - {asyncio.current_task()})
