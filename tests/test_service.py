"""Running as a service: sd_notify, watchdog, socket activation, graceful drain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode

from realtime_daemon.server.app import STATE

from .conftest import (
    DAEMON,
    PATH,
    StartDaemon,
    StartServer,
    content,
    receive_answer,
    receive_close,
    receive_envelope,
    request,
    serve_json,
)


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def wait_for(self, field: str) -> str:
        """The next notification holding ``field`` (a line such as ``READY=1``)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(15):
            while True:
                message = (await loop.sock_recv(self.sock, 4096)).decode()
                self.messages.append(message)
                if field in message.split("\n"):
                    return message


@pytest.fixture
def notify_socket(tmp_path: Path) -> Any:
    sockets: list[NotifySocket] = []

    def bind(address: str | None = None) -> NotifySocket:
        sockets.append(NotifySocket(address or str(tmp_path / "notify")))
        return sockets[-1]

    yield bind
    for s in sockets:
        s.sock.close()


async def test_ready_status_watchdog_and_stopping_are_notified(
    daemon: StartDaemon, notify_socket: Any
) -> None:
    """READY=1 with a STATUS once listening, WATCHDOG=1 pings, STOPPING=1 on SIGTERM."""
    notify = notify_socket()
    env = {"NOTIFY_SOCKET": notify.sock.getsockname(), "WATCHDOG_USEC": "100000"}
    process, port = await serve_json(daemon, env=env)
    ready = await notify.wait_for("READY=1")
    assert f"STATUS=serving 127.0.0.1:{port}/v1/realtime, 0 connections" in ready.split("\n")
    await notify.wait_for("WATCHDOG=1")
    await notify.wait_for("WATCHDOG=1")
    process.proc.send_signal(signal.SIGTERM)
    stopping = await notify.wait_for("STOPPING=1")
    assert "STATUS=draining 0 connections" in stopping.split("\n")
    code, _ = await process.finish()
    assert code == 0


async def test_notify_socket_in_the_abstract_namespace(
    daemon: StartDaemon, notify_socket: Any
) -> None:
    """A NOTIFY_SOCKET starting with @ is an abstract socket, and gets READY=1."""
    name = f"realtime-daemon-test-{uuid.uuid4().hex}"
    notify = notify_socket("\0" + name)
    process, _ = await serve_json(daemon, env={"NOTIFY_SOCKET": "@" + name})
    await notify.wait_for("READY=1")
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_watchdog_for_another_pid_is_ignored(daemon: StartDaemon, notify_socket: Any) -> None:
    """WATCHDOG_PID naming another process means no WATCHDOG=1 from this one."""
    notify = notify_socket()
    env = {
        "NOTIFY_SOCKET": notify.sock.getsockname(),
        "WATCHDOG_USEC": "100000",
        "WATCHDOG_PID": "1",
    }
    process, _ = await serve_json(daemon, env=env)
    await notify.wait_for("READY=1")
    process.proc.send_signal(signal.SIGTERM)
    await notify.wait_for("STOPPING=1")
    assert (await process.finish())[0] == 0
    assert not any("WATCHDOG=1" in m.split("\n") for m in notify.messages)


async def test_socket_activation_serves_the_inherited_socket(daemon: StartDaemon) -> None:
    """With LISTEN_FDS/LISTEN_PID the daemon serves fd 3 instead of binding."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # As systemd does: the socket as fd 3, and LISTEN_PID the pid that exec
    # keeps, the daemon's own.
    exec_activated = (
        "import os, sys\n"
        "os.dup2(int(sys.argv[1]), 3)\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'realtime_daemon', *sys.argv[2:]])\n"
    )
    argv = [sys.executable, "-c", exec_activated, str(fd)]
    process = await daemon(
        "serve", "--port", "1", "--log-format", "json", argv=argv, pass_fds=(fd,)
    )
    ready = await process.wait_for_event("server_ready")
    listener.close()  # only the daemon holds it now
    assert (ready["port"], ready["socket_activated"]) == (port, True)
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(request("activated"))
        assert content(await receive_answer(ws)) == "activated"
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_sigterm_lets_the_answer_finish_then_closes_1001(daemon: StartDaemon) -> None:
    """An answer in progress at SIGTERM completes; then 1001; new connections are refused."""
    process, port = await serve_json(daemon, "--echo-delay-ms", "20")
    url = f"ws://127.0.0.1:{port}{PATH}"
    prompt = "finish me please, all of it"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(request(prompt))
        first = await receive_envelope(ws)
        process.proc.send_signal(signal.SIGTERM)
        await process.wait_for_event("shutdown_started")
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.ws_connect(url)
        rest = await receive_answer(ws)
        assert content([first, *rest]) == prompt
        assert await receive_close(ws) == (WSCloseCode.GOING_AWAY, "server shutting down")
    code, _ = await process.finish()
    assert code == 0


async def test_answer_past_the_deadline_is_cut_with_an_error_envelope(
    daemon: StartDaemon,
) -> None:
    """An answer that cannot finish within --shutdown-timeout ends with an error envelope."""
    process, port = await serve_json(daemon, "--echo-delay-ms", "100", "--shutdown-timeout", "0.3")
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(request("x" * 200))
        await receive_envelope(ws)
        process.proc.send_signal(signal.SIGTERM)
        envelopes = await receive_answer(ws)
        assert envelopes[-1]["event"] == "error"
        assert envelopes[-1]["comment"] == ["answer cut: server shutting down"]
        assert all(
            e.get("data", {}).get("choices", [{}])[0].get("finish_reason") is None
            for e in envelopes
        )
        assert await receive_close(ws) == (WSCloseCode.GOING_AWAY, "server shutting down")
    code, _ = await process.finish()
    assert code == 0


async def test_second_signal_stops_at_once(daemon: StartDaemon) -> None:
    """A second SIGTERM during the drain exits 1 at once with one line."""
    process, port = await serve_json(daemon, "--echo-delay-ms", "100", "--shutdown-timeout", "60")
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(request("y" * 600))
        await receive_envelope(ws)
        process.proc.send_signal(signal.SIGTERM)
        await process.wait_for_event("shutdown_started")
        process.proc.send_signal(signal.SIGTERM)
        code, rest = await process.finish()
    assert code == 1
    assert rest.splitlines()[-1] == ("Error: stopped by a second signal before the drain finished")
    assert "Traceback" not in rest


async def test_draining_daemon_reports_503_and_refuses_upgrades(
    serve_engine: StartServer,
) -> None:
    """Once the drain begins, /health is 503 "draining", upgrades get 503, /live stays 200."""
    client = await serve_engine(echo_delay_ms=20)
    connections = client.app[STATE].connections
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("draining"))
        first = await receive_envelope(ws)
        connections.begin_drain(grace=10)
        async with client.get("/health") as response:
            assert response.status == 503
            assert (await response.json())["status"] == "draining"
        async with client.get("/live") as response:
            assert response.status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(PATH)
        assert refused.value.status == 503
        assert content([first, *await receive_answer(ws)]) == "draining"
        assert (await receive_close(ws))[0] == WSCloseCode.GOING_AWAY
    async with asyncio.timeout(2):
        await connections.wait_closed()


async def test_sigterm_drains_even_when_the_log_cannot_be_written() -> None:
    """With its stderr gone (a closed pipe, a restarted journal) SIGTERM still drains, exit 0."""
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        *DAEMON,
        "serve",
        "--port",
        "0",
        "--log-format",
        "json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=write_end,
    )
    os.close(write_end)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_end, "rb")
    )
    try:
        async with asyncio.timeout(15):
            while b'"server_ready"' not in await reader.readline():
                pass
        transport.close()  # nobody reads the log any more
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        transport.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
