"""Sessions with the openai engine and routed engines: cancel upstream, defaults,
readable upstream errors, and exact per-request metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from realtime_daemon.config import ModelConfig

from .conftest import (
    PATH,
    Client,
    Start,
    StartServer,
    closed_port_url,
    receive_answer,
    receive_envelope,
    receive_until,
    request,
)
from .engines import EndlessEngine, FailingEngine, InBandErrorEngine
from .test_metrics import closed, requests, scrape
from .upstream import Upstream


async def test_cancel_closes_the_upstream_response_at_once(
    proxy: Start, upstream: Upstream
) -> None:
    """request.cancel of a relayed answer closes its upstream response within 100 ms."""
    upstream.mode = "endless"
    client = await proxy(upstream)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("go on", request_id="long"))
        async with asyncio.timeout(2):
            await upstream.streaming.wait()
        await ws.send_json({"type": "request.cancel", "request_id": "long"})
        sent = asyncio.get_running_loop().time()
        cancelled = await receive_until(ws, "cancelled")
        assert {e["request_id"] for e in cancelled} == {"long"}
        async with asyncio.timeout(2):
            await upstream.disconnected.wait()
        assert upstream.disconnected_at is not None
        assert upstream.disconnected_at - sent < 0.1
        upstream.mode = "ok"
        await ws.send_json(request("next one", request_id="next"))
        answer = await receive_answer(ws)
    assert [e["request_id"] for e in answer] == ["next"] * len(answer)
    samples = await scrape(client)
    assert requests(samples, "cancelled", reason="request_cancel", engine="openai") == 1


async def test_request_defaults_merge_under_the_request_and_request_id_is_removed(
    proxy: Start, upstream: Upstream
) -> None:
    """request_defaults fill fields the request left out; request_id never goes upstream."""
    client = await proxy(upstream)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(
            {
                "type": "session.update",
                "session": {"request_defaults": {"temperature": 0.25, "max_tokens": 9}},
            }
        )
        assert (await receive_envelope(ws))["event"] == "session.updated"
        await ws.send_json(request("one", request_id="a", max_tokens=3))
        await receive_answer(ws)
    body = upstream.bodies[0]
    assert (body["temperature"], body["max_tokens"]) == (0.25, 3)
    assert "request_id" not in body


async def test_upstream_failure_carries_status_and_the_upstreams_error(
    proxy: Start, upstream: Upstream
) -> None:
    """With request ids on, an upstream refusal carries its code, status and error type."""
    upstream.mode = "status:400"
    client = await proxy(upstream)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("x", request_id="bad"))
        error = await receive_envelope(ws)
    assert error["request_id"] == "bad"
    assert error["error"] == {
        "code": "upstream_error",
        "message": "upstream replica 0 answered 400: upstream refuses with 400",
        "upstream": {"replica": 0, "status": 400, "type": "x"},
    }
    assert upstream.url not in str(error)


async def test_unreachable_upstream_is_upstream_unreachable(proxy: Start) -> None:
    """A replica that refuses connections: upstream_unreachable, naming replica 0 only."""
    url = closed_port_url()
    client = await proxy(url)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("x", request_id="r"))
        error = await receive_envelope(ws)
    assert error["error"]["code"] == "upstream_unreachable"
    assert error["error"]["upstream"] == {"replica": 0}
    assert error["error"]["message"] == (
        "upstream replica 0 connection failed: ConnectionRefusedError: Connection refused"
    )
    assert "127.0.0.1" not in str(error)
    samples = await scrape(client)
    assert requests(samples, "error", reason="upstream_unreachable") == 1


async def test_close_right_after_the_finish_chunk_counts_completed(
    proxy: Start, upstream: Upstream
) -> None:
    """A client gone after the finish chunk, before the upstream's [DONE], counts completed."""
    upstream.mode = "hold_done"
    client = await proxy(upstream)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("two words"))
        await receive_answer(ws)
    await closed(client)
    upstream.release_done.set()
    samples = await scrape(client)
    assert requests(samples, "completed", engine="openai") == 1
    assert requests(samples, "cancelled") == 0


async def test_routed_requests_are_labelled_with_the_engine_that_answered(
    serve_engine: StartServer, upstream: Upstream
) -> None:
    """Each request counts under its own model and the engine that answered it."""
    models = (
        ModelConfig(name="fast-echo", engine="echo", echo_delay_ms=0),
        ModelConfig(name="llama", engine="openai", upstream_url=(upstream.url,)),
    )
    client = await serve_engine(models=models)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("a", model="fast-echo"))
        await ws.send_json(request("b c", model="llama"))
        await receive_answer(ws)
        await receive_answer(ws)
    await closed(client)
    samples = await scrape(client)
    assert requests(samples, "completed", engine="echo", model="fast-echo") == 1
    assert requests(samples, "completed", engine="openai", model="llama") == 1
    async with client.get("/health") as response:
        routes = (await response.json())["routes"]
    assert routes == {"fast-echo": "echo", "llama": "openai"}


async def test_engine_failure_is_engine_error_with_request_ids(serve_engine: StartServer) -> None:
    """With request ids on, an engine failure's envelope carries engine_error, then 1011."""
    client = await serve_engine(FailingEngine(good_chunks=1, message="GPU fell off"))
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello", request_id="r"))
        chunk = await receive_envelope(ws)
        error = await receive_envelope(ws)
        close = await ws.receive()
    assert chunk["request_id"] == "r"
    assert error["error"] == {"code": "engine_error", "message": "GPU fell off"}
    assert close.data == 1011
    samples = await scrape(client)
    assert requests(samples, "error", reason="engine_error") == 1


async def test_rate_limited_frames_get_rate_limited(serve_engine: StartServer) -> None:
    """Over the rate limit, a request is dropped with rate_limited (readable with ids on)."""
    client: Client = await serve_engine(max_requests_per_second=1)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("one", request_id="1"))
        await ws.send_json(request("two", request_id="2"))
        envelopes: list[dict[str, Any]] = []
        while not any(e.get("event") == "error" for e in envelopes):
            envelopes.append(await receive_envelope(ws))
    error = next(e for e in envelopes if e.get("event") == "error")
    assert error["error"]["code"] == "rate_limited"


@pytest.mark.parametrize(
    ("mode", "code"),
    [("garbage", "upstream_protocol_error"), ("stall", "upstream_timeout")],
)
async def test_upstream_protocol_errors_and_timeouts_have_their_codes(
    proxy: Start, upstream: Upstream, mode: str, code: str
) -> None:
    """A malformed upstream chunk and a silent upstream each end in their own code."""
    upstream.mode = mode
    client = await proxy(upstream, upstream_read_timeout=0.3)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("x", request_id="r"))
        envelope = (await receive_until(ws, "error"))[-1]
    assert envelope["error"]["code"] == code
    assert envelope["error"]["upstream"]["replica"] == 0


async def test_an_engines_own_error_envelope_gets_request_failed(
    serve_engine: StartServer,
) -> None:
    """An error envelope an engine yields itself carries request_failed once ids are on."""
    client = await serve_engine(InBandErrorEngine())
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("x", request_id="r"))
        error = await receive_envelope(ws)
    assert error["error"] == {"code": "request_failed", "message": "upstream said no"}
    assert error["request_id"] == "r"
    samples = await scrape(client)
    assert requests(samples, "error", reason="request_failed") == 1


async def test_shutdown_cut_is_shutting_down_then_1001(serve_engine: StartServer) -> None:
    """An answer cut by the drain deadline: shutting_down with its request_id, then 1001."""
    engine = EndlessEngine()
    client = await serve_engine(engine, shutdown_timeout=0.05)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("long", request_id="cut-me"))
        async with asyncio.timeout(2):
            await engine.streaming.wait()
        shutdown = asyncio.create_task(client.app.shutdown())
        envelope = (await receive_until(ws, "error"))[-1]
        close = await ws.receive()
        await shutdown
    assert envelope["error"]["code"] == "shutting_down"
    assert envelope["request_id"] == "cut-me"
    assert envelope["comment"] == ["answer cut: server shutting down"]
    assert close.data == 1001
    samples = await scrape(client)
    assert requests(samples, "cancelled", reason="shutdown") == 1
