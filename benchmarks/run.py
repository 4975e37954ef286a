"""Benchmarks: realtime-daemon against a bare aiohttp baseline, side by side.

Run by hand (not in CI), from the repository root, with the test extra and
uvloop installed:

    python benchmarks/run.py                 # every scenario, 3 repeats
    python benchmarks/run.py stream fanout --repeats 5

Each scenario runs against the daemon and the baseline (benchmarks/baseline.py)
alternately, several times; the table gives medians with min-max and the
daemon/baseline ratio. Server CPU comes from /proc/<pid>/stat; the load
generator's own CPU is reported so a saturated client is visible. The stream,
fanout and proxy loads are realtime-daemon bench's (``realtime_daemon.bench``),
which checks every envelope (ids consecutive, one terminal per request, the
content equal to the prompt); the other scenarios verify with ``Verifier``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
import uvloop

from realtime_daemon.tools.bench import Plan, Tally, load

ROOT = Path(__file__).resolve().parent.parent
# The load generator gets the last CPU, the servers the others (all when --no-pin);
# proxy's daemon and upstream share every CPU, as they pass each chunk along.
ALL_CPUS = frozenset(os.sched_getaffinity(0))
SERVER_CPUS = set(ALL_CPUS)
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# 1-, 2-, 3- and 4-byte UTF-8 code points.
ALPHABET = "aé中🙂"


def prompt(n: int, salt: int = 0) -> str:
    return "".join(ALPHABET[(i + salt) % 4] for i in range(n))


def request(text: str) -> str:
    return msgspec.json.encode(
        {"model": "bench", "messages": [{"role": "user", "content": text}]}
    ).decode()


# -- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    cpus: frozenset[int] | None = None  # None: SERVER_CPUS

    def start(self) -> None:
        self.port = free_port()
        cpus = self.cpus or SERVER_CPUS
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def pids(self) -> list[int]:
        """The server's process and, under --workers, its workers."""
        assert self.proc is not None
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *map(int, children)]

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / TICK

    def rss_bytes(self) -> int:
        return sum(int(Path(f"/proc/{p}/statm").read_text().split()[1]) for p in self.pids()) * PAGE


def servers(scenario: str, workers: int = 1) -> list[Server]:
    """The daemon and what it is compared with: the baseline, or for proxy the upstream."""
    if scenario == "proxy":
        upstream = Server(
            "baseline", [sys.executable, "benchmarks/upstream.py", "{port}"], cpus=ALL_CPUS
        )
        upstream.start()
        daemon = Server(
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
                f"http://127.0.0.1:{upstream.port}/v1",
                "--heartbeat",
                "0",
                "--log-level",
                "warning",
                "--loop",
                "uvloop",
            ],
            cpus=ALL_CPUS,
        )
        return [daemon, upstream]
    return [
        Server(
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
                "--log-format",
                "json",
                "--log-level",
                "warning",
                "--loop",
                "uvloop",
                "--request-queue-size",
                "64",
                "--workers",
                str(workers),
            ],
        ),
        Server("baseline", [sys.executable, "benchmarks/baseline.py", "{port}"]),
    ]


# -- verification ----------------------------------------------------------------------


class Verifier:
    """Checks one connection's frames against the prompts it sent."""

    def __init__(self) -> None:
        self.next_id = 1

    def answer(self, frames: list[bytes], text: str) -> None:
        chars = []
        for i, raw in enumerate(frames):
            env = msgspec.json.decode(raw)
            assert env["id"] == str(self.next_id), (env["id"], self.next_id)
            self.next_id += 1
            choice = env["data"]["choices"][0]
            if i == len(frames) - 1:
                assert choice["finish_reason"] == "stop"
            else:
                assert choice["finish_reason"] is None
                assert len(choice["delta"]["content"]) == 1
                chars.append(choice["delta"]["content"])
            assert (i == 0) == ("role" in choice["delta"])
        assert "".join(chars) == text


async def timed_answer(
    ws: aiohttp.ClientWebSocketResponse, text: str, verifier: Verifier, first_chunk: list[float]
) -> int:
    """Send one request, note the time to its first frame, verify the answer; frames read."""
    sent = time.perf_counter()
    await ws.send_str(request(text))
    first = await ws.receive()
    first_chunk.append(time.perf_counter() - sent)
    frames = [first.data.encode(), *(await read_answer(ws, text[1:]))]
    verifier.answer(frames, text)
    return len(frames)


async def read_answer(ws: aiohttp.ClientWebSocketResponse, text: str) -> list[bytes]:
    frames = []
    for _ in range(len(text) + 1):
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frames.append(msg.data.encode())
    return frames


# -- scenarios -------------------------------------------------------------------------


@dataclass
class Result:
    metrics: dict[str, float] = field(default_factory=dict)


async def bench_load(server: Server, plan: Plan) -> tuple[Tally, float, float, float]:
    """``plan`` through realtime-daemon bench's load generator: its tally, the wall time,
    the server's CPU seconds and the load generator's own."""
    cpu0, t0, me0 = server.cpu_seconds(), time.perf_counter(), _self_cpu()
    tally = await load(plan)
    wall, cpu, me = time.perf_counter() - t0, server.cpu_seconds() - cpu0, _self_cpu() - me0
    assert not tally.failures, tally.failures
    return tally, wall, cpu, me


async def scenario_stream(server: Server) -> Result:
    """One connection, 100 pipelined requests of 1000 characters."""
    plan = Plan(
        url=server.url,
        connections=1,
        requests=100,
        concurrent=100,
        prompt_chars=1000,
        verify_text=True,
    )
    tally, wall, cpu, me = await bench_load(server, plan)
    return Result(
        {
            "chunks/s": tally.chunks / wall,
            "server µs/chunk": cpu / tally.chunks * 1e6,
            "loadgen CPU %": me / wall * 100,
        }
    )


async def scenario_fanout(server: Server) -> Result:
    """100 connections, each 5 sequential requests of 200 characters."""
    plan = Plan(url=server.url, connections=100, requests=5, prompt_chars=200, verify_text=True)
    tally, wall, cpu, me = await bench_load(server, plan)
    q = statistics.quantiles(tally.ttfc, n=100)
    return Result(
        {
            "chunks/s": tally.chunks / wall,
            "server µs/chunk": cpu / tally.chunks * 1e6,
            "TTFC p50 ms": q[49] * 1e3,
            "TTFC p99 ms": q[98] * 1e3,
            "loadgen CPU %": me / wall * 100,
        }
    )


async def scenario_fair(server: Server) -> Result:
    """One connection streams 20 pipelined 5000-character answers; meanwhile another
    sends sequential 10-character requests (50 at most): their time to first chunk
    shows whether a long answer lets other connections through (fair scheduling)."""
    texts = [prompt(5000, n) for n in range(20)]
    first_chunk: list[float] = []
    async with aiohttp.ClientSession() as session:
        hog = await session.ws_connect(server.url)
        probe = await session.ws_connect(server.url)
        started = asyncio.Event()

        async def read_hog() -> list[list[bytes]]:
            answers = []
            for text in texts:
                answers.append(await read_answer(hog, text))
                started.set()
            return answers

        for text in texts:
            await hog.send_str(request(text))
        hog_task = asyncio.create_task(read_hog())
        await started.wait()  # the first long answer is out; 19 more are coming
        verifier, probed = Verifier(), 0
        while not hog_task.done() and probed < 50:
            await timed_answer(probe, prompt(10, probed), verifier, first_chunk)
            probed += 1
        answers = await hog_task
        await hog.close()
        await probe.close()
    verifier = Verifier()
    for frames, text in zip(answers, texts, strict=True):
        verifier.answer(frames, text)
    q = statistics.quantiles(first_chunk, n=100) if len(first_chunk) > 1 else [0.0] * 99
    return Result(
        {
            "probe answers during it": probed,
            "probe TTFC p50 ms": q[49] * 1e3,
            "probe TTFC p99 ms": q[98] * 1e3,
        }
    )


async def scenario_idle(server: Server) -> Result:
    """5000 held connections: server RSS per connection, before and after one answer each."""
    n = 5000
    rss0 = server.rss_bytes()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        for start in range(0, n, 250):
            sockets += await asyncio.gather(
                *(session.ws_connect(server.url) for _ in range(start, min(n, start + 250)))
            )
        rss_open = server.rss_bytes()

        async def answer(ws: aiohttp.ClientWebSocketResponse, i: int) -> None:
            text = prompt(20, i)
            await ws.send_str(request(text))
            Verifier().answer(await read_answer(ws, text), text)

        for start in range(0, n, 250):
            batch = sockets[start : start + 250]
            await asyncio.gather(*(answer(ws, i) for i, ws in enumerate(batch)))
        rss_used = server.rss_bytes()
        await asyncio.gather(*(ws.close() for ws in sockets))
    return Result(
        {
            "KiB/conn open": (rss_open - rss0) / n / 1024,
            "KiB/conn after answer": (rss_used - rss0) / n / 1024,
        }
    )


async def scenario_flood(server: Server) -> Result:
    """One client sends 5000 requests of 1000 characters without reading."""
    rss0 = server.rss_bytes()
    frame = request(prompt(1000))
    async with aiohttp.ClientSession() as session:
        flooder = await session.ws_connect(server.url)

        async def flood() -> None:
            for _ in range(5000):
                await flooder.send_str(frame)

        task = asyncio.create_task(flood())
        await asyncio.sleep(3)  # a benchmark: let the flood run and the buffers fill
        peak = server.rss_bytes()
        sent = time.perf_counter()
        async with session.ws_connect(server.url) as probe:
            text = prompt(100)
            await probe.send_str(request(text))
            frames = await read_answer(probe, text)
            probe_ms = (time.perf_counter() - sent) * 1e3
        Verifier().answer(frames, text)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await flooder.close()
    return Result({"RSS growth MB": (peak - rss0) / 1e6, "other client answer ms": probe_ms})


async def scenario_proxy(server: Server) -> Result:
    """The openai engine in front of a fast upstream, against reading the upstream directly.

    200 sequential requests of 100 characters on one connection; for the
    "baseline" the load generator posts the same requests to the upstream and
    parses its Server-Sent Events itself.
    """
    texts = [prompt(100, n) for n in range(200)]
    first_chunk: list[float] = []
    chunks = 0
    async with aiohttp.ClientSession() as session:
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        if server.name == "daemon":
            plan = Plan(
                url=server.url, connections=1, requests=200, prompt_chars=100, verify_text=True
            )
            tally = await load(plan)
            assert not tally.failures, tally.failures
            chunks, first_chunk = tally.chunks, tally.ttfc
        else:
            url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
            for text in texts:
                sent = time.perf_counter()
                async with session.post(url, data=request(text)) as response:
                    got: list[str] = []
                    async for line in response.content:
                        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                            continue
                        if not got and len(first_chunk) < len(texts):
                            first_chunk.append(time.perf_counter() - sent)
                        delta = msgspec.json.decode(line[6:])["choices"][0]["delta"]
                        got.append(delta.get("content", ""))
                        chunks += 1
                assert "".join(got) == text
        wall, cpu = time.perf_counter() - t0, server.cpu_seconds() - cpu0
    q = statistics.quantiles(first_chunk, n=100)
    metrics = {"chunks/s": chunks / wall, "TTFC p50 ms": q[49] * 1e3, "TTFC p99 ms": q[98] * 1e3}
    if server.name == "daemon":
        metrics["daemon µs/chunk"] = cpu / chunks * 1e6
    return Result(metrics)


SCENARIOS: dict[str, Callable[[Server], Awaitable[Result]]] = {
    "proxy": scenario_proxy,
    "stream": scenario_stream,
    "fanout": scenario_fanout,
    "fair": scenario_fair,
    "idle": scenario_idle,
    "flood": scenario_flood,
}
DEFAULT_SCENARIOS = ["stream", "fanout", "fair", "idle", "flood", "proxy"]


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the table ---------------------------------------------------------------------------


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.4g} ({min(values):.4g}-{max(values):.4g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", default=DEFAULT_SCENARIOS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let servers and load generator share every CPU",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the daemon's --workers (server CPU and RSS sum its processes)",
    )
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) > 1:
        SERVER_CPUS.intersection_update(cpus[:-1])
        os.sched_setaffinity(0, {cpus[-1]})
    uvloop.install()
    results: dict[tuple[str, str, str], list[float]] = {}
    for name in args.scenarios:
        for _ in range(args.repeats):
            pair = servers(name, args.workers)
            try:
                for server in pair:  # daemon and baseline alternate
                    if server.proc is None:
                        server.start()
                    result = asyncio.run(SCENARIOS[name](server))
                    if name != "proxy":  # the proxy's upstream serves both runs
                        server.stop()
                    for metric, value in result.metrics.items():
                        results.setdefault((name, metric, server.name), []).append(value)
            finally:
                for server in pair:
                    server.stop()
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"msgspec {msgspec.__version__}, uvloop {uvloop.__version__}, "
        f"{args.repeats} repeats, daemon --workers {args.workers}, "
        f"{'servers on CPUs ' + str(sorted(SERVER_CPUS)) if args.pin else 'no pinning'}, "
        "median (min-max)\n"
    )
    print("| scenario | metric | daemon | baseline | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.scenarios:
        metrics = dict.fromkeys(m for (s, m, _) in results if s == name)
        for metric in metrics:
            d, b = results[(name, metric, "daemon")], results.get((name, metric, "baseline"))
            if not b:
                print(f"| {name} | {metric} | {summary(d)} | | |")
                continue
            ratio = statistics.median(d) / statistics.median(b) if statistics.median(b) else 0
            print(f"| {name} | {metric} | {summary(d)} | {summary(b)} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
