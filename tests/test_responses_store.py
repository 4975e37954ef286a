"""Responses chains beyond their connection: the in-memory store, and a real Redis shared
by two daemons (and what a client gets when Redis is down)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import StartServer
from .test_metrics import scrape
from .test_responses import sdk, text_of, until_end, user


class RedisServer:
    """A redis-server of the test's own, on a Unix socket in ``tmp_path``."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(10):
            while b"ready to accept connections" not in await self.proc.stdout.readline():
                assert self.proc.returncode is None, "redis-server exited"

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(tmp_path)
    await server.start()
    yield server
    await server.stop()


async def _turn(conn: Any, text: str, previous: str | None = None, **extra: Any) -> list[Any]:
    await conn.response.create(
        model="echo", input=user(text), previous_response_id=previous, **extra
    )
    return await until_end(conn)


async def test_a_stored_chain_continues_on_a_new_connection(client: Any) -> None:
    """store: true (the default) keeps a response beyond its connection: a new connection
    continues it; a store: false one is known only to its own connection."""
    async with sdk(client).responses.connect() as conn:
        stored = (await _turn(conn, "kept "))[-1].response.id
        local = (await _turn(conn, "not kept", store=False))[-1].response.id
    async with sdk(client).responses.connect() as conn:
        events = await _turn(conn, "again", stored)
        assert events[-1].type == "response.completed"
        assert text_of(events) == "again"
        refused = await _turn(conn, "again", local)
        assert refused[-1].error.code == "previous_response_not_found"


async def test_a_chain_continues_on_a_second_daemon_sharing_redis(
    serve_engine: StartServer, redis_server: RedisServer
) -> None:
    """Two daemons with the same --redis-url: a chain begun on one continues on the other,
    which sends the engine the whole conversation."""
    from .engines import RecordingEngine

    first = await serve_engine(redis_url=redis_server.url)
    engine = RecordingEngine()
    second = await serve_engine(engine, redis_url=redis_server.url)
    async with sdk(first).responses.connect() as conn:
        one = (await _turn(conn, "one"))[-1].response.id
        two = (await _turn(conn, "two", one))[-1].response.id
    async with sdk(second).responses.connect() as conn:
        events = await _turn(conn, "three", two)
    assert events[-1].type == "response.completed", events[-1]
    assert engine.bodies[-1]["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]


async def test_redis_down_is_store_unavailable_and_local_chains_go_on(
    serve_engine: StartServer, redis_server: RedisServer
) -> None:
    """Redis gone: a chain only Redis knows is store_unavailable within seconds; store: true
    responses still complete and chain on their connection; the metric says the store is down."""
    daemon = await serve_engine(redis_url=redis_server.url)
    async with sdk(daemon).responses.connect() as conn:
        stored = (await _turn(conn, "before"))[-1].response.id
    await redis_server.stop()
    async with sdk(daemon).responses.connect() as conn:
        async with asyncio.timeout(5):
            refused = await _turn(conn, "lost", stored)
        assert refused[-1].type == "error"
        error = refused[-1].error
        assert (error.code, error.param) == ("store_unavailable", "previous_response_id")
        first = await _turn(conn, "local")
        assert first[-1].type == "response.completed"
        second = await _turn(conn, "chain", first[-1].response.id)
        assert second[-1].type == "response.completed"
        assert text_of(second) == "chain"
    samples = await scrape(daemon)
    assert samples[("realtime_daemon_store_up", (("dialect", "openai-responses"),))] == 0
