"""RSS of held resumable sessions against open idle connections.

Starts the daemon (echo engine, uvloop, no heartbeat), then N clients each
make their session resumable and get one 100-character answer. Then either
every client drops its TCP connection without a Close (the sessions are
held, with their replay buffers) or keeps it open idle. Reports the daemon's
RSS per session in each case, and after the held sessions expired.

    python benchmarks/resume.py [--sessions 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time

import aiohttp
import uvloop
from run import Server

REQUEST = '{"model": "m", "messages": [{"role": "user", "content": "' + "x" * 100 + '"}]}'


async def gauge(port: int, name: str) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def open_sessions(
    server: Server, n: int, cut: bool, resumable: bool = True
) -> list[aiohttp.ClientWebSocketResponse]:
    kept = []
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    for _ in range(n):
        ws = await session.ws_connect(server.url, heartbeat=None)
        if resumable:
            await ws.send_str('{"type": "session.update", "session": {"resumable": true}}')
            await ws.receive()
        await ws.send_str(REQUEST)
        for _ in range(101):
            await ws.receive()
        if cut:
            transport = ws._response.connection.transport  # type: ignore[union-attr]
            transport.abort()  # no Close frame: the daemon holds the session
        kept.append(ws)
    if cut:
        deadline = time.monotonic() + 30
        while await gauge(server.port, "realtime_daemon_sessions_held") < n:
            assert time.monotonic() < deadline, "sessions not held"
        await session.close()
        return []
    return kept


def run(n: int, cut: bool, window: str, resumable: bool = True) -> tuple[float, float]:
    server = Server(
        "daemon",
        [
            sys.executable,
            "-m",
            "realtime_daemon",
            "serve",
            "--port",
            "{port}",
            "--echo-delay-ms",
            "0",
            "--heartbeat",
            "0",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--resume-window",
            window,
        ],
    )
    server.start()
    try:
        base = server.rss_bytes()
        kept = asyncio.run(open_sessions(server, n, cut, resumable))
        per = (server.rss_bytes() - base) / n / 1024
        after = 0.0
        if cut:
            deadline = time.monotonic() + 60
            while asyncio.run(gauge(server.port, "realtime_daemon_sessions_held")) > 0:
                assert time.monotonic() < deadline
                time.sleep(0.5)
            after = (server.rss_bytes() - base) / n / 1024
        del kept
        return per, after
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    uvloop.install()
    plain_kib, _ = run(args.sessions, cut=False, window="600", resumable=False)
    open_kib, _ = run(args.sessions, cut=False, window="600")
    held_kib, after_kib = run(args.sessions, cut=True, window="20")
    print(
        f"| {args.sessions} sessions, one 100-character answer each | KiB of daemon RSS per "
        "session |\n| --- | --- |"
    )
    print(f"| open, idle, not resumable | {plain_kib:.2f} |")
    print(f"| open, idle, resumable (replay buffer kept) | {open_kib:.2f} |")
    print(f"| held (connection dropped, replay buffer kept) | {held_kib:.2f} |")
    print(f"| after the held sessions expired | {after_kib:.2f} |")


if __name__ == "__main__":
    main()
