"""`realtime-daemon bench` against a real daemon, both as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import pytest

from .conftest import PATH, Certificate, StartDaemon, serve_json


async def bench(
    port: int,
    *args: str,
    url: str = "ws://127.0.0.1:{port}" + PATH,
    env: dict[str, str] | None = None,
    wait: float = 60,
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
    async with asyncio.timeout(wait):
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


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--token", "secret"], {}),
        (["--token-file", "{tokens}"], {}),
        ([], {"REALTIME_DAEMON_TOKEN": "secret"}),
        (["--header", "Authorization: Bearer secret"], {}),
    ],
)
async def test_a_token_gets_bench_in(
    daemon: StartDaemon, tmp_path: Any, args: list[str], env: dict[str, str]
) -> None:
    """A daemon that needs a token: --token, --token-file, REALTIME_DAEMON_TOKEN or a header."""
    tokens = tmp_path / "tokens"
    tokens.write_text("secret\n")
    _, port = await serve_json(daemon, "--auth-token-file", str(tokens), "--echo-delay-ms", "0")
    args = [a.format(tokens=tokens) for a in args]
    code, report = await bench(port, "--connections", "2", "--requests", "2", *args, env=env)
    assert (code, report["requests_ok"], report["requests_failed"]) == (0, 4, {})


@pytest.mark.parametrize("trust", ["--cafile", "--insecure"])
async def test_wss_with_a_cafile_or_insecure(
    daemon: StartDaemon, certificate: Certificate, trust: str
) -> None:
    """A daemon serving TLS: bench trusts its CA with --cafile, or checks nothing with
    --insecure."""
    tls = ("--tls-certfile", certificate.certfile, "--tls-keyfile", certificate.keyfile)
    _, port = await serve_json(daemon, *tls, "--echo-delay-ms", "0")
    args = [trust, certificate.cafile] if trust == "--cafile" else [trust]
    code, report = await bench(port, "--requests", "1", *args, url="wss://127.0.0.1:{port}")
    assert (code, report["requests_ok"]) == (0, 10)


async def test_an_untrusted_certificate_is_counted_as_such(
    daemon: StartDaemon, certificate: Certificate
) -> None:
    """Without --cafile, a certificate of an unknown CA fails every connection, saying why."""
    tls = ("--tls-certfile", certificate.certfile, "--tls-keyfile", certificate.keyfile)
    _, port = await serve_json(daemon, *tls)
    code, report = await bench(
        port, "--connections", "1", "--requests", "1", url="wss://127.0.0.1:{port}"
    )
    [(kind, count)] = report["requests_failed"].items()
    assert (code, count) == (1, 1)
    assert kind.startswith("cannot connect: certificate not trusted: ")


async def test_no_connection_shows_no_latency(daemon: StartDaemon) -> None:
    """Nothing listening: the report says it could not connect, and gives no latency."""
    _, port = await serve_json(daemon)
    code, report = await bench(port + 1 if port < 65535 else 1, "--connections", "2")
    assert code == 1
    assert report["requests_failed"] == {"cannot connect: Connection refused": 20}
    assert (report["connections_opened"], report["ttfc_ms"], report["chunk_gap_ms"]) == (
        0,
        None,
        None,
    )


async def test_no_connection_is_said_in_the_table(daemon: StartDaemon) -> None:
    """The table names the latencies "none: could not connect", and stderr says so."""
    _, port = await serve_json(daemon)
    closed = f"ws://127.0.0.1:{port + 1 if port < 65535 else 1}{PATH}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "realtime_daemon",
        "bench",
        closed,
        "--connections",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    table = out.decode()
    assert proc.returncode == 1
    latencies = [line for line in table.splitlines() if line.startswith("time ")]
    assert [line.split("ms")[-1].strip() for line in latencies] == [
        "none: could not connect",
        "none: could not connect",
    ]
    assert err.decode() == f"could not connect to {closed}\n"


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


async def test_duration_bounds_the_run(daemon: StartDaemon) -> None:
    """Answers slower than --duration and --grace: the run ends, counts them as cut, exit 3."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "1000")  # 100 s an answer
    started = time.monotonic()
    code, report = await bench(
        port, "--connections", "1", "--rate", "4", "--duration", "1", "--grace", "0.5", wait=20
    )
    assert time.monotonic() - started < 15  # process start-up and 1 s of closing included
    assert (code, report["requests_ok"], report["requests_failed"]) == (3, 0, {})
    assert report["requests_cut"] == report["requests_sent"] > 0


async def test_the_report_gives_the_rate_achieved_and_asked(daemon: StartDaemon) -> None:
    """An open-loop run reports the requests per second asked, sent and answered."""
    _, port = await serve_json(daemon, "--echo-delay-ms", "0")
    code, report = await bench(
        port, "--connections", "2", "--rate", "20", "--duration", "2", "--prompt-chars", "5"
    )
    rates = report["requests_per_s"]
    assert (code, report["requests_cut"], report["requests_failed"]) == (0, 0, {})
    assert report["requests_ok"] == report["requests_sent"]
    assert rates["target"] == 20
    assert 15 <= rates["sent"] <= 20.5
    assert 0 < rates["ok"] <= rates["sent"]
