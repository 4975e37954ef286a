"""The openai engine against real upstream servers that stream as vLLM does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from .conftest import (
    PATH,
    Start,
    closed_port_url,
    content,
    receive_answer,
    receive_envelope,
    request,
)
from .upstream import Upstream, started


@pytest.fixture
async def upstreams() -> AsyncIterator[list[Upstream]]:
    async for running in started(2):
        yield running


def datas(envelopes: list[dict[str, Any]]) -> list[Any]:
    return [e["data"] for e in envelopes]


async def receive_until_done(ws: Any, count: int) -> list[dict[str, Any]]:
    return [await receive_envelope(ws) for _ in range(count)]


async def test_upstream_chunks_pass_through_untouched(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """Each upstream chunk is the data of one envelope, as sent; [DONE] is not forwarded."""
    client = await proxy(upstreams[0])
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello big world"))
        got = await receive_until_done(ws, 5)
        await ws.send_json(request("again"))
        again = await receive_until_done(ws, 3)
    assert datas(got) == upstreams[0].sent[0]
    assert datas(again) == upstreams[0].sent[1]
    assert [e["id"] for e in got + again] == [str(n) for n in range(1, 9)]


async def test_upstream_connections_are_reused(proxy: Start, upstreams: list[Upstream]) -> None:
    """Answers that ended with [DONE] leave their connection in the pool for the next request."""
    client = await proxy(upstreams[0])
    for text in ("first", "second"):
        async with client.ws_connect(PATH) as ws:
            await ws.send_json(request(text))
            assert datas(await receive_until_done(ws, 3)) == upstreams[0].sent[-1]
    assert len(upstreams[0].peers) == 2
    assert upstreams[0].peers[0] == upstreams[0].peers[1]


async def test_upstream_cookies_are_not_sent_back(proxy: Start, upstreams: list[Upstream]) -> None:
    """A cookie an upstream sets for one client's request is not sent with the next ones."""
    # By name: aiohttp's default jar ignores cookies from IP addresses.
    client = await proxy(upstreams[0].url.replace("127.0.0.1", "localhost"))
    for text in ("first", "second"):
        async with client.ws_connect(PATH) as ws:
            await ws.send_json(request(text))
            await receive_until_done(ws, 3)
    assert [h.get("Cookie") for h in upstreams[0].headers] == [None, None]


async def test_request_is_forwarded_with_stream_forced_on(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """The upstream gets the client's fields untouched, unknown ones too, and stream: true."""
    client = await proxy(upstreams[0], upstream_api_key="sk-secret")
    body = request(
        "hi",
        stream=False,
        temperature=0.25,
        vendor_field={"a": [1, "é"]},
        stream_options={"include_usage": True},
    )
    async with client.ws_connect(PATH) as ws:
        await ws.send_str(json.dumps(body))
        got = await receive_until_done(ws, 4)
    assert upstreams[0].bodies == [{**body, "stream": True}]
    assert upstreams[0].headers[0]["Authorization"] == "Bearer sk-secret"
    assert got[-1]["data"]["usage"]["completion_tokens"] == 1


async def test_upstream_model_replaces_the_clients(proxy: Start, upstreams: list[Upstream]) -> None:
    """--upstream-model is sent upstream instead of the client's model."""
    client = await proxy(upstreams[0], upstream_model="meta-llama/Llama-3-8B")
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hi", model="whatever"))
        await receive_until_done(ws, 3)
    assert upstreams[0].bodies[0]["model"] == "meta-llama/Llama-3-8B"


async def test_sse_comments_crlf_and_multiline_data_are_parsed(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """Keep-alives, CRLF, data over several lines and split writes still give whole chunks."""
    upstreams[0].mode = "fancy_sse"
    client = await proxy(upstreams[0])
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("a b"))
        got = await receive_until_done(ws, 4)
    assert datas(got) == upstreams[0].sent[0]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("status:400", "answered 400: upstream refuses with 400"),
        ("garbage", "sent a malformed chunk: JSON is malformed"),
        ("error_in_stream", "reported an error: CUDA out of memory"),
    ],
)
async def test_failed_request_is_one_error_envelope_and_the_session_goes_on(
    proxy: Start, upstreams: list[Upstream], mode: str, expected: str
) -> None:
    """A failed upstream request ends in one error envelope; the next request is answered."""
    upstreams[0].mode = mode
    client = await proxy(upstreams[0])
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("first"))
        answer = await receive_answer(ws)
        error = answer[-1]
        assert error["event"] == "error"
        assert expected in error["comment"][0]
        assert error["comment"][0].startswith("upstream replica 0 ")
        assert upstreams[0].url not in error["comment"][0]
        upstreams[0].mode = "ok"
        await ws.send_json(request("second"))
        assert datas(await receive_until_done(ws, 3)) == upstreams[0].sent[-1]


async def test_server_error_fails_over_to_the_next_replica(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """A 5xx before the first chunk is retried on the next replica."""
    first, second = upstreams
    first.mode = "status:503"
    client = await proxy(first, second)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        got = await receive_until_done(ws, 3)
    assert datas(got) == second.sent[0]
    assert len(first.bodies) == 1


async def test_refused_connection_fails_over(proxy: Start, upstreams: list[Upstream]) -> None:
    """A replica that refuses connections is skipped for the next one."""
    client = await proxy(closed_port_url(), upstreams[0])
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        assert datas(await receive_until_done(ws, 3)) == upstreams[0].sent[0]


async def test_unreachable_upstream_is_an_error_envelope(proxy: Start) -> None:
    """With every replica down, the request gets an error envelope naming the failure."""
    url = closed_port_url()
    client = await proxy(url)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        error = await receive_envelope(ws)
    assert error["event"] == "error"
    assert error["comment"][0].startswith("upstream replica 0 connection failed")
    assert url not in error["comment"][0]


async def test_stalled_upstream_times_out(proxy: Start, upstreams: list[Upstream]) -> None:
    """Silence longer than --upstream-read-timeout ends the request with an error envelope."""
    upstreams[0].mode = "stall"
    client = await proxy(upstreams[0], upstream_read_timeout=0.3)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        first, error = await receive_until_done(ws, 2)
    assert first["data"] == upstreams[0].sent[0][0]
    assert error["event"] == "error"
    assert "timed out: no chunk within 0.3 s" in error["comment"][0]


async def test_a_replica_silent_before_its_first_chunk_fails_over(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """Headers and then silence past --upstream-read-timeout: the next replica answers."""
    first, second = upstreams
    first.mode = "silent"
    client = await proxy(first, second, upstream_read_timeout=0.3)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        got = await receive_until_done(ws, 3)
    assert datas(got) == second.sent[0]
    assert len(first.bodies) == 1


async def test_nothing_is_retried_after_the_first_chunk(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """A replica that fails mid-stream gives an error envelope; the next is not asked."""
    first, second = upstreams
    first.mode = "drop_after_first"
    client = await proxy(first, second)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        chunk, error = await receive_until_done(ws, 2)
    assert chunk["data"] == first.sent[0][0]
    assert error["event"] == "error"
    assert second.bodies == []


async def test_client_disconnect_reaches_the_upstream(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """When the client goes away mid-answer, the upstream sees its connection close."""
    upstreams[0].mode = "endless"
    client = await proxy(upstreams[0])
    ws = await client.ws_connect(PATH)
    await ws.send_json(request("go on forever"))
    async with asyncio.timeout(2):
        await receive_envelope(ws)
        await ws.close()
        await upstreams[0].disconnected.wait()


async def test_sessions_stick_to_replicas_round_robin(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """Sessions alternate between replicas; every request of a session goes to its replica."""
    client = await proxy(*upstreams)
    for _ in range(2):
        async with client.ws_connect(PATH) as ws:
            for n in range(3):
                await ws.send_json(request(f"r{n}"))
                await receive_until_done(ws, 3)
    assert [len(u.bodies) for u in upstreams] == [3, 3]


async def test_empty_messages_go_upstream_and_its_refusal_comes_back(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """ "messages": [] is forwarded as it is; the upstream's 400 comes back in band."""
    upstreams[0].mode = "status:400"
    client = await proxy(upstreams[0])
    async with client.ws_connect(PATH) as ws:
        await ws.send_json({"model": "m", "messages": []})
        error = await receive_envelope(ws)
    assert upstreams[0].bodies[0]["messages"] == []
    assert error["event"] == "error"
    assert "answered 400" in error["comment"][0]


async def test_an_upstream_event_over_the_limit_ends_the_request(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """An event over --upstream-max-event-size: an error envelope, the response closed."""
    upstreams[0].mode = "huge_line"
    client = await proxy(upstreams[0], upstream_max_event_size=4096)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("x", request_id="big"))
        error = await receive_envelope(ws)
        async with asyncio.timeout(2):
            await upstreams[0].disconnected.wait()
    assert error["error"]["code"] == "upstream_protocol_error"
    assert error["comment"] == ["upstream replica 0 sent a line over 4096 bytes"]


async def test_a_request_waiting_for_a_pool_slot_is_logged(
    proxy: Start, upstreams: list[Upstream]
) -> None:
    """With every upstream connection busy, the next request waits for one, and the log
    says so (upstream_pool_wait); it is answered on that connection once it is free."""
    upstream = upstreams[0]
    upstream.mode = "hold_done"
    client = await proxy(upstream, upstream_max_connections=1)
    with capture_logs() as logs:
        async with client.ws_connect(PATH) as first, client.ws_connect(PATH) as second:
            await first.send_json(request("one"))
            await receive_answer(first)  # its connection is held until [DONE]
            await second.send_json(request("two"))
            async with asyncio.timeout(2):
                # The log line is the one thing that shows the wait: yield to
                # the daemon (same loop) until it is written.
                while not any(e["event"] == "upstream_pool_wait" for e in logs):  # noqa: ASYNC110
                    await asyncio.sleep(0)
            upstream.release_done.set()
            assert content(await receive_answer(second)) == "two"
    wait = next(e for e in logs if e["event"] == "upstream_pool_wait")
    assert (wait["limit"], wait["waits"]) == (1, 1)
    assert upstream.peers[0] == upstream.peers[1]  # it took the connection the first let go
