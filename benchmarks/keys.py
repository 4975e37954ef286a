"""What named keys cost: a key check, a quota check and a usage count per request.

Two measures, each without keys, with keys counted in memory, and with keys
counted in a redis-server on this machine (started here on a free port):

- at 100 streams: the daemon (echo engine, no delay, uvloop) under 100
  connections each sending sequential 50-character requests, through bench's
  load generator; time to first chunk p50/p99 against the daemon without
  keys, and, with Redis, the daemon's Redis round trips per request (its
  ``realtime_daemon_shared_store_round_trips`` counter);
- in process: :meth:`KeyGrant.admit` then :meth:`KeyGrant.used` in a loop,
  microseconds per request (with Redis, the loop yields to the event loop after
  each request so the batched flusher runs as it would).

    python benchmarks/keys.py [--repeats 3] [--requests 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import structlog
import uvloop
from run import Server, free_port

from realtime_daemon.server.keys import Key
from realtime_daemon.server.metrics import Metrics
from realtime_daemon.server.quotas import Quotas
from realtime_daemon.server.redis_counters import RedisCounters
from realtime_daemon.tools.client import Reach
from realtime_daemon.tools.loadgen import Plan, load
from realtime_daemon.wire.chat import Usage

TOKEN = "bench-token"
KEYS = f"""
[[keys]]
name = "bench"
token = "{TOKEN}"
max_sessions = 100000
requests_per_minute = 100000000
tokens_per_minute = 1000000000
"""


def daemon(mode: str, folder: Path, redis_url: str) -> Server:
    argv = [
        sys.executable, "-m", "realtime_daemon", "serve", "--port", "{port}",
        "--echo-delay-ms", "0", "--heartbeat", "0", "--log-level", "warning",
        "--loop", "uvloop",
    ]  # fmt: skip
    if mode != "open":
        keys = folder / "keys.toml"
        keys.write_text(KEYS)
        argv += ["--keys-file", str(keys)]
    if mode == "redis":
        argv += ["--redis-url", redis_url]
    return Server(mode, argv)


def counter(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def streams(server: Server, requests: int) -> tuple[float, float, float]:
    """TTFC p50 and p99 (ms), and Redis round trips per request."""
    trips = counter(server.port, "realtime_daemon_shared_store_round_trips_total")
    plan = Plan(
        url=server.url,
        connections=100,
        requests=requests,
        prompt_chars=50,
        verify_text=True,
        reach=Reach(headers=(("Authorization", f"Bearer {TOKEN}"),)),
    )
    tally = await load(plan)
    assert not tally.failures, tally.failures
    trips = counter(server.port, "realtime_daemon_shared_store_round_trips_total") - trips
    q = statistics.quantiles(tally.ttfc, n=100)
    return q[49] * 1e3, q[98] * 1e3, trips / tally.ok


async def in_process(redis_url: str | None, n: int = 50_000) -> tuple[float, float]:
    """Microseconds per admit (before the request starts) and per used (after it ends,
    its ``usage`` log line filtered out)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    metrics = Metrics([])
    shared = RedisCounters(redis_url, metrics, "bench") if redis_url else None
    if shared is not None:
        shared.start()
    quotas = Quotas(metrics, shared)
    key = Key("bench", b"x" * 32, None, False, None, 10**12, 10**12)
    grant = quotas.grant(key, "s")
    usage = Usage(prompt_tokens=10, completion_tokens=50, total_tokens=60)
    admitting = using = 0.0
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        assert grant.admit("m") is None
        t1 = clock()
        grant.used("m", usage, "completed", 0.01)
        t2 = clock()
        admitting += t1 - t0
        using += t2 - t1
        if shared is not None:
            await asyncio.sleep(0)  # the flusher's turn, as between requests
    if shared is not None:
        await shared.close()
    return admitting / n * 1e6, using / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20, help="per connection")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        time.sleep(0.5)
        try:
            results: dict[str, list[tuple[float, float, float]]] = {}
            for _ in range(args.repeats):
                for mode in ("open", "keys", "redis"):
                    server = daemon(mode, Path(folder), url)
                    server.start()
                    try:
                        results.setdefault(mode, []).append(
                            uvloop.run(streams(server, args.requests))
                        )
                    finally:
                        server.stop()
            base50 = statistics.median(r[0] for r in results["open"])
            base99 = statistics.median(r[1] for r in results["open"])
            print("100 streams, time to first chunk (median of repeats):")
            for mode, runs in results.items():
                p50 = statistics.median(r[0] for r in runs)
                p99 = statistics.median(r[1] for r in runs)
                trips = statistics.median(r[2] for r in runs)
                print(
                    f"  {mode:6} p50 {p50:.3f} ms ({p50 - base50:+.3f})  "
                    f"p99 {p99:.3f} ms ({p99 - base99:+.3f})  "
                    f"Redis round trips/request {trips:.3f}"
                )
            print("in process, admit + used per request:")
            for name, where in (("memory", None), ("redis", url)):
                admit, used = uvloop.run(in_process(where))
                print(f"  {name:6} admit {admit:.2f} µs, used {used:.2f} µs")
        finally:
            redis.terminate()
            redis.wait()


if __name__ == "__main__":
    main()
