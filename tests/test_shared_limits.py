"""Limits shared by instances through a real redis-server: one budget per key for the fleet."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from realtime_daemon.server.redis_counters import RedisCounters
from realtime_daemon.server.state import STATE

from .conftest import PATH, Daemon, StartServer, content, receive_answer, receive_envelope, request
from .test_keys import KEYS, MODELS, Clock, bearer

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server of the test's own, on a free port, its files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            async with asyncio.timeout(5):
                while True:
                    try:
                        await client.ping()
                        return
                    except redis.ConnectionError:
                        await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            async with asyncio.timeout(5):
                await self.proc.wait()
            self.proc = None


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(KEYS)
    return path


Fleet = Callable[[], "asyncio.Future[Daemon]"]


async def instance(serve_engine: StartServer, keys_file: Path, server: RedisServer) -> Daemon:
    return await serve_engine(
        engine=None, models=MODELS, keys_file=str(keys_file), redis_url=server.url
    )


async def until(condition: Callable[[], bool]) -> None:
    """Wait, bounded, for what the instances tell each other through Redis."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - Redis tells nobody
            await asyncio.sleep(0.01)


def shared(daemon: Daemon) -> RedisCounters:
    store = daemon.app[STATE].quotas.shared
    assert isinstance(store, RedisCounters)
    return store


async def test_two_instances_enforce_one_session_budget(
    serve_engine: StartServer, keys_file: Path, redis_server: RedisServer
) -> None:
    """max_sessions 2 across two instances: the third session, on either, gets 429."""
    one = await instance(serve_engine, keys_file, redis_server)
    two = await instance(serve_engine, keys_file, redis_server)
    first = await one.ws_connect(PATH, headers=bearer("alpha-token"))
    second = await two.ws_connect(PATH, headers=bearer("alpha-token"))
    for daemon in (one, two):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await daemon.ws_connect(PATH, headers=bearer("alpha-token"))
        assert caught.value.status == 429
    await second.close()
    client = redis.Redis.from_url(redis_server.url)
    try:
        async with asyncio.timeout(5):
            while await client.zcard("rd:sessions:alpha") != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()
    third = await one.ws_connect(PATH, headers=bearer("alpha-token"))
    await first.close()
    await third.close()


async def test_two_instances_enforce_one_request_budget(
    serve_engine: StartServer, keys_file: Path, redis_server: RedisServer
) -> None:
    """requests_per_minute 3 across two instances: two on one, one on the other, then no."""
    one = await instance(serve_engine, keys_file, redis_server)
    two = await instance(serve_engine, keys_file, redis_server)
    clock = Clock(6_000_000.0 + 10)
    for daemon in (one, two):
        daemon.app[STATE].quotas.clock = clock
    window = int(clock.now // 60)
    async with one.ws_connect(PATH, headers=bearer("alpha-token")) as ws:
        for text in ("a", "b"):
            await ws.send_json(request(text, model="m1"))
            assert content(await receive_answer(ws)) == text
    async with two.ws_connect(PATH, headers=bearer("alpha-token")) as ws:
        await until(lambda: two.app[STATE].quotas.count("alpha", "requests", window) == 2)
        await ws.send_json(request("c", model="m1"))
        assert content(await receive_answer(ws)) == "c"
        await until(lambda: shared(two).total("alpha", "requests", window) == 3)
        await ws.send_json(request("d", model="m1", request_id="d"))
        refused = await receive_envelope(ws)
        assert refused["error"]["code"] == "rate_limit_exceeded"
        assert refused["error"]["retry_after"] == 50


async def test_a_dead_instance_s_slots_are_freed_when_its_leases_run_out(
    serve_engine: StartServer, keys_file: Path, redis_server: RedisServer
) -> None:
    """An instance that stops renewing (it died) holds its slots only until its leases end."""
    dying = await instance(serve_engine, keys_file, redis_server)
    store = shared(dying)
    store.lease = 1  # seconds: the test's, not the default 30
    held = [await dying.ws_connect(PATH, headers=bearer("alpha-token")) for _ in range(2)]
    assert store._task is not None
    store._task.cancel()  # dead: no renewal, no release
    store.release = lambda key, member: None  # type: ignore[method-assign]
    survivor = await instance(serve_engine, keys_file, redis_server)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await survivor.ws_connect(PATH, headers=bearer("alpha-token"))
    async with asyncio.timeout(5):
        while True:
            try:
                ws = await survivor.ws_connect(PATH, headers=bearer("alpha-token"))
                break
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 429
                await asyncio.sleep(0.1)
    await ws.close()
    for socket_ in held:
        await socket_.close()


async def test_redis_stopped_mid_run_falls_back_to_counting_per_instance(
    serve_engine: StartServer, keys_file: Path, redis_server: RedisServer
) -> None:
    """Redis gone: a warning, the gauge at 0, service goes on counting locally; back: 1."""
    daemon = await instance(serve_engine, keys_file, redis_server)
    async with daemon.ws_connect(PATH, headers=bearer("alpha-token")) as ws:
        await ws.send_json(request("before", model="m1"))
        assert content(await receive_answer(ws)) == "before"
    with capture_logs() as logs:
        await redis_server.stop()
        async with daemon.ws_connect(PATH, headers=bearer("alpha-token")) as ws:
            await ws.send_json(request("during", model="m1"))
            assert content(await receive_answer(ws)) == "during"
        await until(lambda: not shared(daemon).up)
    assert [line["event"] for line in logs].count("shared_store_down") == 1
    async with daemon.get("/metrics") as response:
        assert "realtime_daemon_shared_store_up 0.0" in await response.text()
    await redis_server.start()
    await until(lambda: shared(daemon).up)
    async with daemon.get("/metrics") as response:
        assert "realtime_daemon_shared_store_up 1.0" in await response.text()
