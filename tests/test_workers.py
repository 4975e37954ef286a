"""``--workers N``: processes sharing one socket, summed metrics, one drain, replacement.

Which worker accepts a connection is up to the kernel; to put a connection on
a given worker, the tests stop the others (SIGSTOP) until it is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode

from .conftest import (
    PATH,
    Certificate,
    Process,
    StartDaemon,
    content,
    receive_answer,
    receive_close,
    receive_envelope,
    request,
    serve_json,
)
from .test_metrics import requests, scrape
from .test_service import NotifySocket


async def serve_workers(
    daemon: StartDaemon, *args: str, **kw: Any
) -> tuple[Process, int, list[int]]:
    """``serve --workers 2`` as a subprocess, once every worker is ready; port and pids."""
    process, port = await serve_json(daemon, "--workers", "2", *args, **kw)
    pids: list[int] = process.lines[-1]["pids"]
    assert len(pids) == 2 and os.getpid() not in pids
    return process, port, pids


@contextlib.contextmanager
def only(pid: int, pids: list[int]) -> Iterator[None]:
    """While inside, only worker ``pid`` runs, so it accepts every new connection."""
    others = [p for p in pids if p != pid]
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


@contextlib.asynccontextmanager
async def fresh_session(port: int) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that opens a new TCP connection for every request."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as s:
        yield s


async def exited(pidfd: int) -> None:
    """Wait until the process of ``pidfd`` has exited (child of ours or not)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(pidfd, done.set_result, None)
    try:
        async with asyncio.timeout(5):
            await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def health_pid(session: aiohttp.ClientSession) -> int:
    async with session.get("/health") as response:
        pid: int = (await response.json())["pid"]
        return pid


async def test_each_worker_serves_and_metrics_sum_all_of_them(daemon: StartDaemon) -> None:
    """Both workers answer on the one port, and /metrics from either counts both."""
    process, port, pids = await serve_workers(daemon, "--echo-delay-ms", "0")
    async with fresh_session(port) as session:
        sockets = []
        for pid in pids:
            with only(pid, pids):
                assert await health_pid(session) == pid
                ws = await session.ws_connect(PATH)
            sockets.append(ws)
            await ws.send_json(request(f"served by {pid}"))
            assert content(await receive_answer(ws)) == f"served by {pid}"
        for pid in pids:
            with only(pid, pids):
                samples = await scrape(session)
            assert samples[("realtime_daemon_connections_total", ())] == 2
            assert samples[("realtime_daemon_connections_open", ())] == 2
            assert requests(samples, "completed") == 2
        for ws in sockets:
            await ws.close()
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_sigterm_drains_every_worker(daemon: StartDaemon) -> None:
    """SIGTERM to the supervisor: answers on both workers finish, then 1001, exit 0."""
    process, port, pids = await serve_workers(daemon, "--echo-delay-ms", "20")
    prompt = "finish me on every worker"
    async with fresh_session(port) as session:
        sockets = []
        for pid in pids:
            with only(pid, pids):
                sockets.append(await session.ws_connect(PATH))
        firsts = []
        for ws in sockets:
            await ws.send_json(request(prompt))
            firsts.append(await receive_envelope(ws))
        process.proc.send_signal(signal.SIGTERM)
        for ws, first in zip(sockets, firsts, strict=True):
            assert content([first, *await receive_answer(ws)]) == prompt
            assert await receive_close(ws) == (WSCloseCode.GOING_AWAY, "server shutting down")
    code, rest = await process.finish()
    assert code == 0
    assert rest.count('"event": "worker_stopped"') == 2
    for pid in pids:  # reaped by the supervisor: gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_worker_that_dies_is_replaced(daemon: StartDaemon) -> None:
    """A killed worker is replaced; its finished requests stay counted, its connections not."""
    process, port, pids = await serve_workers(daemon, "--echo-delay-ms", "0")
    victim, survivor = pids
    async with fresh_session(port) as session:
        with only(victim, pids):
            ws = await session.ws_connect(PATH)
        await ws.send_json(request("before"))
        await receive_answer(ws)
        os.kill(victim, signal.SIGKILL)
        async with asyncio.timeout(2):
            assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSED
        exited = await process.wait_for_event("worker_exited")
        assert (exited["pid"], exited["exit_code"]) == (victim, -signal.SIGKILL)
        ready = await process.wait_for_event("worker_ready")  # only the replacement's is left
        assert ready["worker"] == exited["worker"]
        replacement = ready["pid"]
        with only(replacement, [replacement, survivor]):
            assert await health_pid(session) == replacement
            samples = await scrape(session)
        assert requests(samples, "completed") == 1
        assert samples[("realtime_daemon_connections_open", ())] == 0
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_readiness_and_watchdog_come_from_the_supervisor(
    daemon: StartDaemon, tmp_path: Path
) -> None:
    """READY=1 once every worker is ready, STATUS= with their connections summed,
    WATCHDOG=1 while they ping, STOPPING=1 on SIGTERM."""
    notify = NotifySocket(str(tmp_path / "notify"))
    env = {"NOTIFY_SOCKET": notify.sock.getsockname(), "WATCHDOG_USEC": "200000"}
    try:
        process, port, pids = await serve_workers(daemon, env=env)
        ready = await notify.wait_for("READY=1")
        status = f"STATUS=serving 127.0.0.1:{port}/v1/realtime with 2 workers"
        assert f"{status}, 0 connections" in ready.split("\n")
        await notify.wait_for("WATCHDOG=1")
        await notify.wait_for("WATCHDOG=1")
        async with fresh_session(port) as session:
            sockets = []
            for pid in pids:
                with only(pid, pids):
                    sockets.append(await session.ws_connect(PATH))
            await notify.wait_for(f"{status}, 2 connections")
            for ws in sockets:
                await ws.close()
        await notify.wait_for(f"{status}, 0 connections")
        process.proc.send_signal(signal.SIGTERM)
        stopping = await notify.wait_for("STOPPING=1")
        assert "STATUS=draining 2 workers, 0 connections" in stopping.split("\n")
        assert (await process.finish())[0] == 0
    finally:
        notify.sock.close()
    # Only the supervisor talks to systemd.
    assert all("WORKER=" not in message for message in notify.messages)


async def test_a_stuck_worker_is_killed_and_replaced(daemon: StartDaemon) -> None:
    """A worker that stops pinging for WatchdogSec is killed and replaced."""
    env = {"WATCHDOG_USEC": "200000"}
    process, _, pids = await serve_workers(daemon, env=env)
    os.kill(pids[0], signal.SIGSTOP)
    unresponsive = await process.wait_for_event("worker_unresponsive")
    assert unresponsive["pid"] == pids[0]
    exited = await process.wait_for_event("worker_exited")
    assert (exited["pid"], exited["exit_code"]) == (pids[0], -signal.SIGKILL)
    await process.wait_for_event("worker_ready")
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_workers_serve_a_unix_socket(daemon: StartDaemon, tmp_path: Path) -> None:
    """--unix with --workers: the supervisor binds the socket file, workers answer on it."""
    path = str(tmp_path / "daemon.sock")
    process = await daemon("serve", "--workers", "2", "--unix", path, "--log-format", "json")
    ready = await process.wait_for_event("server_ready")
    assert ready["unix"] == path
    connector = aiohttp.UnixConnector(path=path)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(f"http://localhost{PATH}") as ws,
    ):
        await ws.send_json(request("over unix"))
        assert content(await receive_answer(ws)) == "over unix"
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_a_busy_address_is_one_line_with_workers(daemon: StartDaemon) -> None:
    """With --workers the supervisor binds, and a busy address is the same one line, exit 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = await daemon("serve", "--workers", "2", "--port", str(port))
        code, rest = await process.finish()
    assert code == 1
    assert rest == f"Error: cannot listen on 127.0.0.1:{port}: address already in use\n"


async def test_sighup_reaches_every_worker(daemon: StartDaemon) -> None:
    """SIGHUP to the supervisor is passed on: each worker logs that it had nothing to reload."""
    process, _, _ = await serve_workers(daemon)
    process.proc.send_signal(signal.SIGHUP)
    first = await process.wait_for_event("reload_skipped")
    second = await process.wait_for_event("reload_skipped")
    assert {first["worker"], second["worker"]} == {1, 2}
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_workers_of_a_killed_supervisor_drain_and_exit(daemon: StartDaemon) -> None:
    """SIGKILL to the supervisor: its workers see it gone, drain, and exit by themselves."""
    process, port, pids = await serve_workers(daemon, "--echo-delay-ms", "0")
    pidfds = [os.pidfd_open(pid) for pid in pids]
    async with fresh_session(port) as session, session.ws_connect(PATH) as ws:
        process.proc.kill()
        assert await receive_close(ws) == (WSCloseCode.GOING_AWAY, "server shutting down")
    stopped = [await process.wait_for_event("server_stopped") for _ in pids]
    assert {line["worker"] for line in stopped} == {1, 2}
    gone = [line["worker"] for line in process.lines if line["event"] == "supervisor_gone"]
    assert sorted(gone) == [1, 2]
    for pidfd in pidfds:
        await exited(pidfd)


async def test_workers_serve_tls(daemon: StartDaemon, certificate: Certificate) -> None:
    """With a certificate each worker speaks wss:// on the supervisor's socket."""
    tls = ("--tls-certfile", certificate.certfile, "--tls-keyfile", certificate.keyfile)
    process, port, pids = await serve_workers(daemon, "--echo-delay-ms", "0", *tls)
    client_ctx = certificate.client_context
    async with aiohttp.ClientSession() as session:
        for pid in pids:
            with only(pid, pids):
                ws = await session.ws_connect(f"wss://127.0.0.1:{port}{PATH}", ssl=client_ctx)
            await ws.send_json(request(f"secure from {pid}"))
            assert content(await receive_answer(ws)) == f"secure from {pid}"
            await ws.close()
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_sigterm_while_workers_start_still_drains(daemon: StartDaemon) -> None:
    """SIGTERM before the workers are ready: they start, drain at once, and all exit 0."""
    process = await daemon("serve", "--workers", "2", "--port", "0", "--log-format", "json")
    await process.wait_for_event("worker_started")
    process.proc.send_signal(signal.SIGTERM)
    code, rest = await process.finish()
    assert code == 0, rest
    assert rest.count('"exit_code": 0') == 2
    assert "Traceback" not in rest
