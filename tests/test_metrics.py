"""GET /metrics: Prometheus text, updated as connections and requests happen."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from realtime_daemon.server.app import STATE

from .conftest import (
    PATH,
    Client,
    StartDaemon,
    StartServer,
    receive_answer,
    receive_close,
    request,
    serve_json,
)
from .engines import EndlessEngine, FailingEngine, GatedEngine, InBandErrorEngine
from .rawws import RawWebSocket

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Client | aiohttp.ClientSession) -> Samples:
    async with client.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests(samples: Samples, outcome: str, **labels: str) -> float:
    """The requests counted with ``outcome`` (and ``labels``), summed over the other labels."""
    return sum(
        value
        for (name, got), value in samples.items()
        if name == "realtime_daemon_requests_total"
        and dict(got)["outcome"] == outcome
        and all(dict(got)[k] == v for k, v in labels.items())
    )


async def sample_reaches(client: Client, name: str, value: float) -> Samples:
    """Scrape until the unlabelled sample ``name`` is at least ``value``; that scrape."""
    async with asyncio.timeout(2):
        while True:
            samples = await scrape(client)
            if samples.get((name, ()), 0) >= value:
                return samples


async def closed(client: Client) -> None:
    async with asyncio.timeout(2):
        await client.app[STATE].connections.wait_closed()


async def test_answered_request_is_counted_with_its_latencies(client: Client) -> None:
    """One answer counts a connection, a completed request, its chunks and both histograms."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        await receive_answer(ws)
        during = await scrape(client)
    await closed(client)
    after = await scrape(client)
    assert during[("realtime_daemon_connections_open", ())] == 1
    assert after[("realtime_daemon_connections_open", ())] == 0
    assert after[("realtime_daemon_connections_total", ())] == 1
    assert requests(after, "completed") == 1
    assert requests(after, "cancelled") == requests(after, "error") == 0
    assert after[("realtime_daemon_chunks_sent_total", ())] == 6
    assert after[("realtime_daemon_time_to_first_chunk_seconds_count", ())] == 1
    assert after[("realtime_daemon_request_duration_seconds_count", ())] == 1
    assert after[("realtime_daemon_closes_total", (("code", "1000"),))] == 1


async def test_answer_cut_by_the_client_is_cancelled(serve_engine: StartServer) -> None:
    """A client that closes mid-answer counts one request cancelled for client_gone."""
    engine = EndlessEngine()
    client = await serve_engine(engine)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("long"))
        async with asyncio.timeout(2):
            await engine.streaming.wait()
    await closed(client)
    samples = await scrape(client)
    assert requests(samples, "cancelled", reason="client_gone") == 1
    assert requests(samples, "completed") == 0


async def test_engine_failure_counts_an_error_and_a_1011(serve_engine: StartServer) -> None:
    """An engine that raises mid-answer counts an error request and a 1011 close."""
    client = await serve_engine(FailingEngine(good_chunks=1))
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        await receive_answer(ws)  # the chunk, then the error envelope
        await receive_close(ws)
    await closed(client)
    samples = await scrape(client)
    assert requests(samples, "error") == 1
    assert samples[("realtime_daemon_closes_total", (("code", "1011"),))] == 1


async def test_in_band_error_counts_the_request_as_error(serve_engine: StartServer) -> None:
    """A request answered with an error envelope counts as error; the next as completed."""
    client = await serve_engine(InBandErrorEngine())
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("first"))
        await ws.send_json(request("second"))
        assert (await receive_answer(ws))[0]["event"] == "error"
        await receive_answer(ws)
    await closed(client)
    samples = await scrape(client)
    assert requests(samples, "error") == 1
    assert requests(samples, "completed") == 1


async def test_queue_pushback_and_high_water_are_reported(serve_engine: StartServer) -> None:
    """A reader held back by a full queue shows as a pushback and the high-water mark."""
    engine = GatedEngine()
    client = await serve_engine(engine, request_queue_size=2)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("p0"))
        async with asyncio.timeout(2):
            await engine.started.wait()  # answering p0; p1 and p2 fill the queue, p3 waits
        for n in range(1, 4):
            await ws.send_json(request(f"p{n}"))
        pushbacks = "realtime_daemon_request_queue_pushbacks_total"
        assert (await sample_reaches(client, pushbacks, 1))[(pushbacks, ())] == 1
        engine.gate.set()
        for _ in range(4):
            await receive_answer(ws)
    samples = await scrape(client)
    assert samples[("realtime_daemon_request_queue_high_water", ())] == 2


async def test_process_metrics_are_exported(client: Client) -> None:
    """The process collector's metrics are part of the scrape."""
    samples = await scrape(client)
    assert ("process_cpu_seconds_total", ()) in samples
    assert ("process_resident_memory_bytes", ()) in samples


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ((b"reserved opcode", 0x3), "1002"),
        ((b"continuation with no start", 0x0), "1002"),
        ((b"\x03\xe8\xff\xfe", 0x8), "1007"),  # a Close reason that is not UTF-8
    ],
)
async def test_closes_aiohttp_sends_are_counted_with_their_code(
    client: Client, frame: tuple[bytes, int], code: str
) -> None:
    """A close aiohttp sends itself (a protocol error) is counted with the code it sent."""
    ws = await RawWebSocket.connect(client.host, client.port, PATH)
    payload, opcode = frame
    ws.send_frame(payload, opcode=opcode)
    async with asyncio.timeout(5):
        sent, _ = await ws.read_close()
    ws.abort()
    await closed(client)
    samples = await scrape(client)
    assert str(sent) == code
    assert samples[("realtime_daemon_closes_total", (("code", code),))] == 1


async def test_a_served_daemon_leaves_out_the_created_series(daemon: StartDaemon) -> None:
    """``serve`` sets the process up once: its scrape has no ``*_created`` series."""
    process, port = await serve_json(daemon)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    process.proc.terminate()
    assert "realtime_daemon_connections_total" in text
    assert "_created" not in text
