"""Behind nginx: the configuration in docs/deploy.md, in front of two real daemons."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode

from .conftest import (
    PATH,
    StartDaemon,
    content,
    receive_answer,
    receive_close,
    receive_envelope,
    request,
    serve_json,
)
from .rawws import RawWebSocket

DEPLOY = Path(__file__).parent.parent / "docs" / "deploy.md"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx-light)"
)


def documented_nginx_block() -> str:
    match = re.search(r"```nginx\n(.*?)```", DEPLOY.read_text(), re.S)
    assert match, "docs/deploy.md has no nginx block"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def connections_total(port: int) -> int:
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    match = re.search(r"^realtime_daemon_connections_total (\S+)$", text, re.M)
    assert match
    return int(float(match.group(1)))


@pytest.fixture
async def proxy(daemon: StartDaemon, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Two daemons and nginx running the documented block in front of them."""
    a, port_a = await serve_json(daemon, "--echo-delay-ms", "20", "--instance-name", "d1")
    b, port_b = await serve_json(daemon, "--echo-delay-ms", "20", "--instance-name", "d2")
    listen = free_port()
    block = (
        documented_nginx_block()
        .replace("127.0.0.1:8001", f"127.0.0.1:{port_a}")
        .replace("127.0.0.1:8002", f"127.0.0.1:{port_b}")
        .replace("listen 80;", f"listen 127.0.0.1:{listen};")
        .replace("/var/log/nginx/", f"{tmp_path}/")
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
error_log stderr notice;
pid {tmp_path}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/client_body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
{block}
}}
"""
    )
    nginx = await asyncio.create_subprocess_exec(
        NGINX,  # type: ignore[arg-type]
        "-p",
        str(tmp_path),
        "-c",
        str(conf),
        "-g",
        "daemon off;",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert nginx.stderr is not None
    async with asyncio.timeout(10):
        # nginx has bound its port once it starts its workers.
        while b"start worker process" not in (line := await nginx.stderr.readline()):
            assert line, "nginx exited"
    try:
        yield {
            "url": f"ws://127.0.0.1:{listen}{PATH}",
            "a": (a, port_a),
            "b": (b, port_b),
            "port": listen,
            "access_log": tmp_path / "realtime-daemon.access.log",
        }
    finally:
        nginx.terminate()
        await nginx.wait()


async def test_upgrade_passes_and_answers_stream_through_nginx(proxy: dict[str, Any]) -> None:
    """Through nginx the WebSocket upgrades and the answer streams chunk by chunk."""
    async with aiohttp.ClientSession() as session, session.ws_connect(proxy["url"]) as ws:
        await ws.send_json(request("through the proxy"))
        assert content(await receive_answer(ws)) == "through the proxy"


async def test_both_instances_receive_connections(proxy: dict[str, Any]) -> None:
    """Connections through nginx are spread over both daemons."""
    async with aiohttp.ClientSession() as session:
        for n in range(4):
            async with session.ws_connect(proxy["url"]) as ws:
                await ws.send_json(request(f"c{n}"))
                await receive_answer(ws)
    counts = [await connections_total(proxy[k][1]) for k in ("a", "b")]
    assert sum(counts) == 4
    assert all(c >= 1 for c in counts)


async def test_draining_one_instance_moves_new_connections_to_the_other(
    proxy: dict[str, Any],
) -> None:
    """SIGTERM to one daemon: its answer finishes, then 1001; new connections go to the other."""
    (a, port_a), (_, port_b) = proxy["a"], proxy["b"]
    async with aiohttp.ClientSession() as session:
        # Open connections until one lands on A, and keep that one streaming.
        on_a = None
        for _ in range(4):
            before = await connections_total(port_a)
            ws = await session.ws_connect(proxy["url"])
            await ws.send_json(request("finish on a draining instance"))
            first = await receive_envelope(ws)
            if await connections_total(port_a) > before:
                on_a = ws
                break
            await ws.close()
        assert on_a is not None, "nginx never picked daemon A"
        a.proc.send_signal(signal.SIGTERM)
        await a.wait_for_event("shutdown_started")
        before_b = await connections_total(port_b)
        for n in range(3):
            async with session.ws_connect(proxy["url"]) as ws:
                await ws.send_json(request(f"after {n}"))
                assert content(await receive_answer(ws)) == f"after {n}"
        assert await connections_total(port_b) == before_b + 3
        rest = await receive_answer(on_a)
        assert content([first, *rest]) == "finish on a draining instance"
        assert await receive_close(on_a) == (WSCloseCode.GOING_AWAY, "server shutting down")
    code, _ = await a.finish()
    assert code == 0


async def test_a_resume_reaches_the_instance_holding_the_session(proxy: dict[str, Any]) -> None:
    """Sessions on both instances, each cut and resumed through nginx: every resume is
    routed by its token's instance name and gets the rest of its answer."""
    prefixes = set()
    for n in range(4):
        raw = await RawWebSocket.connect("127.0.0.1", proxy["port"], PATH)
        raw.send_frame(b'{"type": "session.update", "session": {"resumable": true}}')
        token = json.loads((await raw.read_frame())[1])["data"]["resume_token"]
        prefixes.add(token.split(".")[0])
        prompt = f"resume me {n}"
        raw.send_frame(json.dumps(request(prompt)).encode())
        first = json.loads((await raw.read_frame())[1])
        raw.abort()
        path = f"{PATH}?resume={token}&after={first['id']}"
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{proxy['port']}{path}") as ws,
        ):
            rest = await receive_answer(ws)
        assert content([first, *rest]) == prompt
    assert prefixes == {"d1", "d2"}


async def test_the_access_log_holds_no_resume_token(proxy: dict[str, Any]) -> None:
    """The documented access log names the path of a resume upgrade, not its token."""
    token = "d1.not-for-the-log-0123456789"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"{proxy['url']}?resume={token}&after=1")
        # One worker logs a request before it serves the next one.
        async with session.get(f"http://127.0.0.1:{proxy['port']}/health") as response:
            assert response.status == 200
    log = proxy["access_log"].read_text()
    assert f"GET {PATH} HTTP/1.1" in log
    assert token not in log and "resume=" not in log
