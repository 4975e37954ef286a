"""The relay scenario: the openai engine at realistic pacing, against a bare aiohttp relay.

A paced upstream (``paced_upstream.py``: RATE chunks per second, CHUNKS a
answer, each chunk carrying the time it was written) serves C streams, one
request after another on each, for DURATION seconds:

- ``direct``: the load generator reads the upstream itself (HTTP + SSE);
- ``daemon``: through ``realtime-daemon serve --engine openai``;
- ``baseline``: through ``relay_baseline.py``, a bare aiohttp relay;
- ``probe``: through ``relay_probe.py``, plain asyncio Protocols (a lower bound).

Reported per target: the relay's CPU per relayed chunk, the latency from
the upstream's write to the load generator's read (p50/p99/p99.9, and
"added" over ``direct`` at the same C), time to first chunk, errors, the
relay's RSS per open stream, and the load generator's own CPU (near 100 %
it, not the relay, would set the pace). The relay runs on the first CPU;
upstream and load generator share the last.

    python benchmarks/relay.py --streams 100 200 300 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import msgspec
import uvloop
from run import Server, _self_cpu

REQUEST = '{"model": "paced", "messages": [{"role": "user", "content": "go"}]}'
BODY = b'{"model": "paced", "messages": [{"role": "user", "content": "go"}], "stream": true}'


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice]


class _Envelope(msgspec.Struct):
    data: _Chunk | None = None
    event: str | None = None


decode_envelope = msgspec.json.Decoder(_Envelope).decode
decode_chunk = msgspec.json.Decoder(_Chunk).decode


@dataclass
class Stats:
    measure_from: float
    latency: list[int] = field(default_factory=list)  # ns, upstream write to client read
    ttfc: list[int] = field(default_factory=list)  # ns, request sent to first chunk read
    chunks: int = 0
    errors: int = 0

    def chunk(self, content: str | None, now: int, first: bool, asked: int) -> None:
        if time.monotonic() < self.measure_from:
            return
        self.chunks += 1
        self.latency.append(now - int(content or 0))
        if first:
            self.ttfc.append(now - asked)


async def ws_stream(url: str, stats: Stats, stop_at: float, delay: float) -> None:
    await asyncio.sleep(delay)  # streams start spread over one chunk interval
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while time.monotonic() < stop_at:
            asked = time.monotonic_ns()
            await ws.send_str(REQUEST)
            first = True
            while True:
                msg = await ws.receive()
                now = time.monotonic_ns()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    stats.errors += 1
                    return
                envelope = decode_envelope(msg.data)
                if envelope.data is None:
                    stats.errors += 1
                    break
                choice = envelope.data.choices[0]
                if choice.finish_reason:
                    break
                stats.chunk(choice.delta.content, now, first, asked)
                first = False


async def direct_stream(url: str, stats: Stats, stop_at: float, delay: float) -> None:
    await asyncio.sleep(delay)
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < stop_at:
            asked = time.monotonic_ns()
            first = True
            async with session.post(url, data=BODY) as response:
                rest = b""
                while data := await response.content.readany():
                    now = time.monotonic_ns()
                    events = (rest + data).split(b"\n\n")
                    rest = events.pop()
                    for event in events:
                        if not event.startswith(b"data: {"):
                            continue
                        choice = decode_chunk(event[6:]).choices[0]
                        if choice.finish_reason:
                            continue
                        stats.chunk(choice.delta.content, now, first, asked)
                        first = False


def run_load(
    target: str, url: str, streams: int, duration: float, interval: float, relay: Server | None
) -> dict[str, float]:
    async def main() -> dict[str, float]:
        start = time.monotonic()
        warmup = max(2.0, interval * 3)
        stats = Stats(measure_from=start + warmup)
        stop_at = start + warmup + duration
        work = direct_stream if target == "direct" else ws_stream
        rss0 = relay.rss_bytes() if relay else 0
        tasks = [
            asyncio.create_task(work(url, stats, stop_at, interval * i / streams))
            for i in range(streams)
        ]
        await asyncio.sleep(warmup)
        cpu0 = relay.cpu_seconds() if relay else 0.0
        me0, t0 = _self_cpu(), time.monotonic()
        rss = relay.rss_bytes() if relay else 0
        await asyncio.sleep(duration)
        cpu = (relay.cpu_seconds() - cpu0) if relay else 0.0
        me, wall = _self_cpu() - me0, time.monotonic() - t0
        chunks = stats.chunks
        await asyncio.gather(*tasks)
        lat = sorted(stats.latency)
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6  # noqa: E731
        result = {
            "chunks/s": chunks / wall,
            "lat p50 ms": q(0.5),
            "lat p99 ms": q(0.99),
            "lat p99.9 ms": q(0.999),
            "TTFC p50 ms": statistics.median(stats.ttfc) / 1e6,
            "errors": float(stats.errors),
            "loadgen CPU %": me / wall * 100,
        }
        if relay is not None:
            result["relay µs/chunk"] = cpu / chunks * 1e6 if chunks else 0.0
            result["relay CPU %"] = cpu / wall * 100
            result["relay RSS KiB/stream"] = (rss - rss0) / streams / 1024
        return result

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 200, 300])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--targets", nargs="+", default=["direct", "daemon", "baseline", "probe"])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    relay_cpus = frozenset(cpus[:-1] or cpus) if args.workers == 1 else frozenset(cpus)
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
    uvloop.install()
    interval = 1 / args.rate
    rows = []
    for streams in args.streams:
        upstream = Server(
            "upstream",
            [
                sys.executable,
                "benchmarks/paced_upstream.py",
                "{port}",
                "--rate",
                str(args.rate),
                "--chunks",
                str(args.chunks),
            ],
            cpus=frozenset({cpus[-1]}),
        )
        upstream.start()
        base = f"http://127.0.0.1:{upstream.port}/v1"
        try:
            direct: dict[str, float] = {}
            for target in args.targets:
                relay = None
                url = f"{base}/chat/completions"
                if target == "daemon":
                    relay = Server(
                        "daemon",
                        [
                            sys.executable,
                            "-m",
                            "realtime_daemon",
                            "serve",
                            "--port",
                            "{port}",
                            "--engine",
                            "openai",
                            "--upstream-url",
                            base,
                            "--log-level",
                            "warning",
                            "--loop",
                            "uvloop",
                            "--workers",
                            str(args.workers),
                        ],
                        cpus=relay_cpus,
                    )
                elif target == "baseline":
                    relay = Server(
                        "baseline",
                        [sys.executable, "benchmarks/relay_baseline.py", "{port}", base],
                        cpus=relay_cpus,
                    )
                elif target == "probe":
                    relay = Server(
                        "probe",
                        [
                            sys.executable,
                            "benchmarks/relay_probe.py",
                            "{port}",
                            f"127.0.0.1:{upstream.port}",
                        ],
                        cpus=relay_cpus,
                    )
                if relay is not None:
                    relay.start()
                    url = relay.url
                try:
                    got = run_load(target, url, streams, args.duration, interval, relay)
                finally:
                    if relay is not None:
                        relay.stop()
                if target == "direct":
                    direct = got
                elif direct:
                    for metric in ("lat p50 ms", "lat p99 ms", "TTFC p50 ms"):
                        got[f"added {metric}"] = got[metric] - direct[metric]
                rows.append((streams, target, got))
                print(streams, target, {k: round(v, 3) for k, v in got.items()}, flush=True)
        finally:
            upstream.stop()
    print(
        f"\n# {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, rate {args.rate}/s, "
        f"{args.chunks} chunks an answer, {args.duration:g} s per run, daemon --workers "
        f"{args.workers}\n"
    )
    metrics = [
        "relay µs/chunk",
        "lat p50 ms",
        "lat p99 ms",
        "lat p99.9 ms",
        "added lat p50 ms",
        "added lat p99 ms",
        "TTFC p50 ms",
        "added TTFC p50 ms",
        "chunks/s",
        "errors",
        "relay CPU %",
        "relay RSS KiB/stream",
        "loadgen CPU %",
    ]
    print("| streams | target | " + " | ".join(metrics) + " |")
    print("| --- " * (len(metrics) + 2) + "|")
    for streams, target, got in rows:
        cells = [f"{got[m]:.3g}" if m in got else "" for m in metrics]
        print(f"| {streams} | {target} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
