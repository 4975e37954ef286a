"""`realtime-daemon bench` against a real daemon, both as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from .conftest import PATH, StartDaemon, serve_json


async def bench(
    port: int,
    *args: str,
    url: str = "ws://127.0.0.1:{port}" + PATH,
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run ``realtime-daemon bench URL --json ARGS`` (no URL if empty, ``env`` added to the
    environment); its exit status and report."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "realtime_daemon",
        "bench",
        *([url.format(port=port)] if url else []),
        "--json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out)


async def test_two_processes_report_every_request(daemon: StartDaemon) -> None:
    """2 processes x 2 connections x 5 requests: 20 verified answers, every chunk counted."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    code, report = await bench(
        port,
        "--processes",
        "2",
        "--connections",
        "4",
        "--requests",
        "5",
        "--prompt-chars",
        "10",
        "--verify-text",
    )
    assert code == 0
    assert (report["requests_ok"], report["requests_failed"]) == (20, {})
    assert report["chunks"] == 20 * 11  # 10 characters and a stop chunk each
    assert len(report["client_cpu"]) == 2
    assert 0 < report["ttfc_ms"]["p50"] <= report["ttfc_ms"]["p99"] <= report["ttfc_ms"]["max"]


async def test_concurrent_requests_use_request_ids(daemon: StartDaemon) -> None:
    """--concurrent 3: three answers in flight per connection, each verified."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "1")
    code, report = await bench(
        port, "--connections", "2", "--concurrent", "3", "--requests", "6", "--verify-text"
    )
    assert (code, report["requests_ok"], report["requests_failed"]) == (0, 12, {})


async def test_a_dropped_chunk_is_caught(daemon: StartDaemon) -> None:
    """An engine that drops a chunk: every answer fails the check, exit 1."""
    _, port = await serve_json(daemon, "--engine", "tests.engines:DropsAChunk")
    code, report = await bench(port, "--connections", "2", "--requests", "3", "--verify-text")
    assert code == 1
    assert report["requests_failed"] == {"text differs from the prompt": 6}
    assert report["requests_ok"] == 0


async def test_a_refused_upgrade_is_counted_by_status(daemon: StartDaemon, tmp_path: Any) -> None:
    """Upgrades the daemon refuses are counted as "refused <status>"."""
    tokens = tmp_path / "tokens"
    tokens.write_text("secret\n")
    _, port = await serve_json(daemon, "--auth-token-file", str(tokens))
    code, report = await bench(port, "--connections", "2", "--requests", "1")
    assert (code, report["requests_failed"]) == (1, {"refused 401": 2})


async def test_host_port_is_the_daemons_address(daemon: StartDaemon) -> None:
    """bench HOST:PORT loads ws://HOST:PORT/v1/realtime."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    code, report = await bench(port, "--requests", "2", url="127.0.0.1:{port}")
    assert (code, report["requests_ok"]) == (0, 20)


async def test_the_address_comes_from_realtime_daemon_url(daemon: StartDaemon) -> None:
    """Without a URL, bench loads the daemon REALTIME_DAEMON_URL names."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    env = {"REALTIME_DAEMON_URL": f"http://127.0.0.1:{port}"}
    code, report = await bench(port, "--requests", "2", url="", env=env)
    assert (code, report["requests_ok"]) == (0, 20)
