"""The drain, as a client that answers at once (the ``websockets`` library) sees it:
the daemon keeps reading until every answer is done, then closes without delay."""

from __future__ import annotations

import asyncio
import json
import signal

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from .conftest import PATH, StartDaemon, request, serve_json


async def test_drain_longer_than_the_heartbeat_keeps_reading(daemon: StartDaemon) -> None:
    """A 1.5 s drain with a 0.5 s heartbeat: pongs are read, the answer finishes, a late
    request is refused in band, and the 1001 ends TCP at once."""
    process, port = await serve_json(
        daemon, "--heartbeat", "0.5", "--shutdown-timeout", "10", "--echo-delay-ms", "10"
    )
    text = "z" * 150  # 1.5 s of answer: three heartbeats
    loop = asyncio.get_running_loop()
    async with connect(f"ws://127.0.0.1:{port}{PATH}") as ws:
        await ws.send(json.dumps(request(text, request_id="long")))
        first = json.loads(await ws.recv())
        process.proc.send_signal(signal.SIGTERM)
        await process.wait_for_event("shutdown_started")
        await ws.send(json.dumps(request("late", request_id="late")))
        envelopes = [first]
        async with asyncio.timeout(10):
            try:
                while True:
                    envelopes.append(json.loads(await ws.recv()))
            except ConnectionClosedOK:
                closed_at = loop.time()
            await ws.wait_closed()  # the TCP connection, not only the Close frame
            tcp_closed_at = loop.time()
        close = (ws.close_code, ws.close_reason)
    answer = [e for e in envelopes if e.get("request_id") == "long"]
    late = [e for e in envelopes if e.get("request_id") == "late"]
    assert "".join(e["data"]["choices"][0]["delta"].get("content", "") for e in answer) == text
    assert answer[-1]["data"]["choices"][0]["finish_reason"] == "stop"
    assert [e["error"]["code"] for e in late] == ["shutting_down"]
    assert close == (1001, "server shutting down")
    assert tcp_closed_at - closed_at < 1.0  # the daemon's close timeout is 5 s
    code, _ = await process.finish()
    assert code == 0


async def test_the_drain_lets_a_response_finish_and_refuses_a_new_one(daemon: StartDaemon) -> None:
    """On /v1/responses: the response in progress completes, a create sent during the drain
    is an error (shutting_down), then 1001."""
    process, port = await serve_json(daemon, "--shutdown-timeout", "10", "--echo-delay-ms", "10")
    async with connect(f"ws://127.0.0.1:{port}/v1/responses") as ws:
        create = {"type": "response.create", "model": "echo", "input": "y" * 100}
        await ws.send(json.dumps(create))
        first = json.loads(await ws.recv())
        process.proc.send_signal(signal.SIGTERM)
        await process.wait_for_event("shutdown_started")
        await ws.send(json.dumps({**create, "input": "late", "stream_id": "other"}))
        events = [first]
        async with asyncio.timeout(10):
            try:
                while True:
                    events.append(json.loads(await ws.recv()))
            except ConnectionClosedOK:
                pass
        close = ws.close_code
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and "response.completed" in kinds
    assert [e["error"]["code"] for e in events if e["type"] == "error"] == ["shutting_down"]
    assert close == 1001
    code, _ = await process.finish()
    assert code == 0
