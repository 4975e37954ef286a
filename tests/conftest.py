"""Fixtures: a real daemon app on a real socket, and WebSocket helpers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import trustme
import uvloop
from aiohttp import web

from realtime_daemon.config import Config
from realtime_daemon.engines.base import Engine
from realtime_daemon.server.app import build_app
from realtime_daemon.server.serve import make_runner

from .upstream import Upstream, started

BOTH_LOOPS = frozenset(
    {"test_h1", "test_openai", "test_session_upstream", "test_fakellm", "test_stt_openai"}
)
"""Modules whose tests run on asyncio's loop and on uvloop: the openai engine's client
works on the loop's transports, which differ (uvloop's are not asyncio.Transport)."""


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


PATH = "/v1/realtime"


class Daemon:
    """A daemon app served on a real socket by the daemon's own runner, and a client."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.session = aiohttp.ClientSession(base_url=f"http://{host}:{port}")

    def ws_connect(self, path: str, **kwargs: Any) -> Any:
        """Open a WebSocket to ``path`` (usable with ``async with`` or ``await``)."""
        return self.session.ws_connect(path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        """A plain HTTP GET of ``path``."""
        return self.session.get(path, **kwargs)


Client = Daemon
StartServer = Callable[..., Awaitable[Daemon]]


@pytest.fixture
def config() -> Config:
    """Settings for a test server: any free port, no echo delay."""
    return Config(port=0, echo_delay_ms=0)


@pytest.fixture
async def serve_engine(config: Config) -> AsyncIterator[StartServer]:
    """Start a daemon around a given engine (and optional settings); stop it after the test."""
    started: list[tuple[web.AppRunner, Daemon]] = []

    async def start(
        engine: Engine | None = None, engine_name: str | None = None, **settings: Any
    ) -> Daemon:
        if engine_name is not None:
            settings["engine"] = engine_name
        merged = msgspec.structs.replace(config, **settings)
        app = build_app(merged, engine)
        runner = make_runner(app, merged)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        daemon = Daemon(app, host, port)
        started.append((runner, daemon))
        return daemon

    yield start
    for runner, daemon in started:
        await daemon.session.close()
        await runner.cleanup()


@pytest.fixture
async def client(serve_engine: StartServer) -> Daemon:
    """A running daemon with the echo engine."""
    return await serve_engine()


def request(text: str = "hello", model: str = "test-model", **extra: Any) -> dict[str, Any]:
    """A chat-completion request whose last message is a user message."""
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def receive_envelope(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next frame, which must be a Text frame holding a JSON envelope."""
    async with asyncio.timeout(2):
        msg = await ws.receive()
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    envelope: dict[str, Any] = json.loads(msg.data)
    return envelope


async def receive_answer(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """The envelopes of one answer, up to and including its finish chunk."""
    envelopes = []
    while True:
        envelope = await receive_envelope(ws)
        envelopes.append(envelope)
        if "data" not in envelope or envelope["data"]["choices"][0]["finish_reason"]:
            return envelopes


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, event: str, key: str = "event"
) -> list[dict[str, Any]]:
    """The envelopes up to and including the first whose ``key`` is ``event`` (Realtime
    events: ``key="type"``)."""
    envelopes = [await receive_envelope(ws)]
    while envelopes[-1].get(key) != event:
        envelopes.append(await receive_envelope(ws))
    return envelopes


async def receive_close(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Wait for the server's Close; return its code and reason."""
    async with asyncio.timeout(2):
        msg = await ws.receive()
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    return msg.data, msg.extra or ""


def content(envelopes: list[dict[str, Any]]) -> str:
    """The answer's text, joined from its chunks."""
    return "".join(e["data"]["choices"][0]["delta"].get("content", "") for e in envelopes)


class Certificate:
    """A certificate for 127.0.0.1 from a throwaway CA, as files (the CA's too), and a
    client context trusting it."""

    def __init__(self, folder: Path) -> None:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1")
        self.certfile, self.keyfile = str(folder / "cert.pem"), str(folder / "key.pem")
        self.cafile = str(folder / "ca.pem")
        ca.cert_pem.write_to_path(self.cafile)
        issued.private_key_and_cert_chain_pem.write_to_path(self.certfile)
        issued.private_key_pem.write_to_path(self.keyfile)
        self.client_context = ssl.create_default_context()
        ca.configure_trust(self.client_context)

    def server_context(self) -> ssl.SSLContext:
        """A server's TLS context with the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    """A certificate for the daemon (``certfile``, ``keyfile``) and a ``client_context``."""
    return Certificate(tmp_path)


DAEMON = [sys.executable, "-m", "realtime_daemon"]


class Process:
    """A daemon started as a subprocess, with its JSON log lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    async def wait_for_event(self, event: str) -> dict[str, Any]:
        assert self.proc.stderr is not None
        async with asyncio.timeout(15):
            while True:
                line = await self.proc.stderr.readline()
                assert line, f"daemon exited before {event!r}: {self.lines}"
                try:
                    record = json.loads(line)
                except ValueError:
                    raise AssertionError(f"not a JSON log line: {line!r}") from None
                self.lines.append(record)
                if record["event"] == event:
                    return record

    async def finish(self) -> tuple[int, str]:
        """Wait for exit; return the exit code and the rest of stderr."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(15):
            rest = await self.proc.stderr.read()
            return await self.proc.wait(), rest.decode()


StartDaemon = Callable[..., Awaitable[Process]]


@pytest.fixture
async def daemon() -> AsyncIterator[StartDaemon]:
    """Start ``python -m realtime_daemon ARGS`` as a subprocess; kill it after the test."""
    started: list[Process] = []

    async def start(
        *args: str, env: dict[str, str] | None = None, argv: list[str] | None = None, **kw: Any
    ) -> Process:
        proc = await asyncio.create_subprocess_exec(
            *(argv if argv is not None else DAEMON),
            *args,
            env={**os.environ, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            **kw,
        )
        started.append(Process(proc))
        return started[-1]

    yield start
    for process in started:
        if process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


async def serve_json(daemon: StartDaemon, *args: str, **kw: Any) -> tuple[Process, int]:
    """``serve --port 0 --log-format json ARGS`` as a subprocess, once it listens; its port."""
    process = await daemon("serve", "--port", "0", "--log-format", "json", *args, **kw)
    ready = await process.wait_for_event("server_ready")
    return process, int(ready["port"])


Start = Callable[..., Awaitable[Daemon]]


@pytest.fixture
def proxy(serve_engine: StartServer) -> Start:
    """A daemon running the openai engine against the given upstreams (or URLs)."""

    async def start(*replicas: Any, **settings: Any) -> Daemon:
        urls = tuple(r if isinstance(r, str) else r.url for r in replicas)
        return await serve_engine(engine=None, engine_name="openai", upstream_url=urls, **settings)

    return start


_HELD_PORTS: list[socket.socket] = []


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """One OpenAI-compatible upstream (``tests/upstream.py``), for the openai engine."""
    async for running in started(1):
        yield running[0]


def closed_port_url() -> str:
    """An upstream URL whose port refuses connections.

    The port stays bound (not listening: connecting is refused) until the tests end, so
    that no server started later, the daemon under test among them, is given it.
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(s)
    return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for s in _HELD_PORTS:
        s.close()
