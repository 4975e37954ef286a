"""``realtime-daemon bench``: load a running daemon from the outside, and check what it sends.

Connections are spread over ``--processes`` client processes (so that the
client is not what is measured); each connection sends requests closed-loop
(the next once an answer ends, ``--concurrent`` at a time) or, with
``--rate``, open-loop at fixed times. Every envelope is checked: ids
consecutive per connection, one terminal per request, and (``--verify-text``,
for the echo engine) the answer equal to the prompt. Failures are counted by
kind: an error envelope's code, a close code, a refused upgrade, a lost
connection, a check that failed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import multiprocessing
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import click
import msgspec

from realtime_daemon.tools.client import daemon_url

__all__ = ["Plan", "Tally", "bench", "load", "make_prompt"]

ALPHABET = "aé中🙂"  # 1- to 4-byte UTF-8
_GAP_SAMPLES = 200_000
_decode = msgspec.json.Decoder().decode  # the client's per-chunk cost: msgspec, not json

# Requests done and failed, two counters per client process, shared with the parent
# for its progress line; each process writes only its own pair.
_progress: Any = None
_slot = 0


def _share(progress: Any) -> None:
    global _progress
    _progress = progress


def make_prompt(chars: int, salt: int) -> str:
    return "".join(ALPHABET[(i + salt) % 4] for i in range(chars))


@dataclass
class Plan:
    """The load one client process puts on the server.

    ``concurrent`` requests are in flight per connection; with
    ``request_ids`` they carry ids (and the session is asked for that
    concurrency), without, they are pipelined and their answers read in order.
    """

    url: str
    connections: int
    requests: int
    concurrent: int = 1
    duration: float = 0.0
    prompt_chars: int = 100
    rate: float = 0.0  # requests per second for this process; 0: closed loop
    verify_text: bool = False
    model: str = "bench"
    request_ids: bool = False


@dataclass
class Tally:
    ok: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    ttfc: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    chunks: int = 0
    bytes: int = 0

    def gap(self, value: float) -> None:
        if len(self.gaps) < _GAP_SAMPLES:
            self.gaps.append(value)
        elif random.random() < 0.01:
            self.gaps[random.randrange(_GAP_SAMPLES)] = value


@dataclass
class _Pending:
    text: str
    sent: float
    last: float = 0.0
    got: list[str] = field(default_factory=list)
    first: bool = True


class _Connection:
    """One connection's requests and the checks on what comes back."""

    def __init__(self, plan: Plan, tally: Tally, index: int) -> None:
        self.plan, self.tally, self.index = plan, tally, index
        self.next_id = 1
        self.sent = 0
        self.pending: dict[str, _Pending] = {}
        self.order: collections.deque[str] = collections.deque()
        self.room = asyncio.Semaphore(plan.concurrent)
        self.ids = plan.request_ids

    async def run(self, session: aiohttp.ClientSession, deadline: float) -> None:
        try:
            ws = await session.ws_connect(self.plan.url, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            self.tally.failures[f"refused {exc.status}"] += self.plan.requests or 1
            return
        except (aiohttp.ClientError, OSError):
            self.tally.failures["connection refused"] += self.plan.requests or 1
            return
        async with ws:
            if self.ids:
                update = {"max_concurrent_requests": self.plan.concurrent}
                await ws.send_json({"type": "session.update", "session": update})
            sender = asyncio.create_task(self._send(ws, deadline))
            try:
                await self._receive(ws, sender)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)

    def _more(self, deadline: float) -> bool:
        if self.plan.requests:
            return self.sent < self.plan.requests
        return time.monotonic() < deadline

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, deadline: float) -> None:
        interval = self.plan.connections / self.plan.rate if self.plan.rate else 0.0
        due = time.monotonic() + random.random() * interval
        while self._more(deadline):
            if interval:
                due += interval
                await asyncio.sleep(max(due - time.monotonic(), 0))
            else:
                await self.room.acquire()
            self.sent += 1
            rid = f"{self.index}-{self.sent}"
            text = make_prompt(self.plan.prompt_chars, self.sent)
            body: dict[str, Any] = {
                "model": self.plan.model,
                "messages": [{"role": "user", "content": text}],
            }
            if self.ids:
                body["request_id"] = rid
            self.pending[rid] = _Pending(text, time.monotonic())
            self.order.append(rid)
            await ws.send_str(json.dumps(body))

    async def _receive(
        self, ws: aiohttp.ClientWebSocketResponse, sender: asyncio.Task[None]
    ) -> None:
        tally = self.tally
        while not (sender.done() and not self.pending):
            msg = await ws.receive()
            now = time.monotonic()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                kind = f"close {msg.data}" if msg.type is aiohttp.WSMsgType.CLOSE else "lost"
                tally.failures[kind] += len(self.pending) or 1
                return
            tally.bytes += len(msg.data)
            envelope = _decode(msg.data)
            if envelope.get("id") != str(self.next_id):
                tally.failures["ids not consecutive"] += 1
                self.next_id = int(envelope.get("id") or 0)
            self.next_id += 1
            if envelope.get("event") == "session.updated":
                continue
            rid = envelope.get("request_id") if self.ids else next(iter(self.order), None)
            answer = self.pending.get(rid) if isinstance(rid, str) else None
            if answer is None or not isinstance(rid, str):
                tally.failures["envelope for no request"] += 1
                continue
            if envelope.get("event") == "error":
                code = (envelope.get("error") or {}).get("code", "error")
                self._done(rid, f"error {code}")
                continue
            tally.chunks += 1
            if answer.first:
                tally.ttfc.append(now - answer.sent)
                answer.first = False
            else:
                tally.gap(now - answer.last)
            answer.last = now
            choice = envelope["data"]["choices"][0]
            answer.got.append(choice["delta"].get("content") or "")
            if choice.get("finish_reason"):
                text = "".join(answer.got)
                wrong = self.plan.verify_text and text != answer.text
                self._done(rid, "text differs from the prompt" if wrong else None)

    def _done(self, rid: str, failure: str | None) -> None:
        del self.pending[rid]
        if rid in self.order:
            self.order.remove(rid)
        if failure is None:
            self.tally.ok += 1
        else:
            self.tally.failures[failure] += 1
        if _progress is not None:
            _progress[_slot + (failure is not None)] += 1
        self.room.release()


async def load(plan: Plan, first_index: int = 0) -> Tally:
    """Run ``plan`` in this process (``benchmarks/run.py`` does); what came back."""
    return await _load(plan, first_index)


async def _load(plan: Plan, first_index: int) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + plan.duration
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        connections = [_Connection(plan, tally, first_index + n) for n in range(plan.connections)]
        await asyncio.gather(*(c.run(session, deadline) for c in connections))
    return tally


def _process(plan: Plan, first_index: int, slot: int) -> dict[str, Any]:
    """One client process: its tally, and the CPU it used."""
    global _slot
    _slot = slot
    started, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    tally = asyncio.run(_load(plan, first_index))
    used = resource.getrusage(resource.RUSAGE_SELF)
    seconds = used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime
    wall = time.monotonic() - started
    return {
        "ok": tally.ok,
        "failures": dict(tally.failures),
        "ttfc": tally.ttfc,
        "gaps": tally.gaps,
        "chunks": tally.chunks,
        "bytes": tally.bytes,
        "cpu": seconds / wall if wall else 0.0,
        "wall": wall,
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _report(results: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    ttfc = [v for r in results for v in r["ttfc"]]
    gaps = [v for r in results for v in r["gaps"]]
    failures: collections.Counter[str] = collections.Counter()
    for r in results:
        failures.update(r["failures"])
    chunks = sum(r["chunks"] for r in results)
    ms = 1000.0
    return {
        "requests_ok": sum(r["ok"] for r in results),
        "requests_failed": dict(failures),
        "ttfc_ms": {
            q: round(_percentile(ttfc, p) * ms, 3)
            for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        }
        | {"max": round(max(ttfc, default=0.0) * ms, 3)},
        "chunk_gap_ms": {
            "p50": round(_percentile(gaps, 0.5) * ms, 3),
            "p99": round(_percentile(gaps, 0.99) * ms, 3),
        },
        "chunks": chunks,
        "chunks_per_s": round(chunks / wall, 1) if wall else 0.0,
        "bytes_per_s": round(sum(r["bytes"] for r in results) / wall, 1) if wall else 0.0,
        "seconds": round(wall, 3),
        "client_cpu": [round(r["cpu"], 3) for r in results],
    }


def _print_table(report: dict[str, Any]) -> None:
    rows = [
        ("requests ok", report["requests_ok"]),
        *((f"failed: {kind}", n) for kind, n in sorted(report["requests_failed"].items())),
        (
            "time to first chunk p50/p90/p99/max ms",
            "/".join(str(report["ttfc_ms"][q]) for q in ("p50", "p90", "p99", "max")),
        ),
        (
            "time between chunks p50/p99 ms",
            f"{report['chunk_gap_ms']['p50']}/{report['chunk_gap_ms']['p99']}",
        ),
        ("chunks/s", report["chunks_per_s"]),
        ("bytes/s", report["bytes_per_s"]),
        ("client CPU per process", ", ".join(f"{c:.0%}" for c in report["client_cpu"])),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")


@click.command(
    short_help="Load a daemon and report latency, throughput and failures.",
    context_settings={"show_default": True},
)
@click.argument("url", required=False)
@click.option("--connections", type=click.IntRange(min=1), default=10, help="WebSockets opened.")
@click.option(
    "--requests",
    type=click.IntRange(min=0),
    default=10,
    help="Requests per connection (0 with --duration: until it ends).",
)
@click.option(
    "--concurrent",
    type=click.IntRange(min=1),
    default=1,
    help="Requests in flight per connection (above 1, with request ids).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to run, instead of a request count.",
)
@click.option(
    "--prompt-chars",
    type=click.IntRange(min=1),
    default=100,
    help="Characters per prompt (1- to 4-byte UTF-8 mixed).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Requests per second overall, sent on schedule (open loop); 0: closed loop.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    help="Client processes the connections are spread over.",
)
@click.option("--model", default="bench", help="The requests' model.")
@click.option("--verify-text", is_flag=True, help="Check each answer equals its prompt (echo).")
@click.option("--json", "json_output", is_flag=True, help="The report as one JSON object.")
def bench(url: str | None, processes: int, json_output: bool, **options: Any) -> None:
    """Load the daemon at URL and report latency, throughput and what went wrong.

    URL: ws://, wss://, http:// (taken as ws) or https:// (as wss), or
    HOST:PORT; without a path, /v1/realtime. By default $REALTIME_DAEMON_URL,
    or ws://127.0.0.1:8000/v1/realtime.
    """
    url = daemon_url(url)
    if options["duration"]:
        options["requests"] = 0
    elif not options["requests"]:
        raise click.UsageError("give --requests or --duration")
    plans: list[tuple[Plan, int, int]] = []
    per, extra = divmod(options["connections"], processes)
    for n in range(processes):
        share = per + (n < extra)
        if share:
            rate = options["rate"] * share / options["connections"]
            plan = Plan(
                url=url,
                **{**options, "connections": share, "rate": rate},
                request_ids=options["concurrent"] > 1,
            )
            plans.append((plan, n * (per + 1), 2 * len(plans)))
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    progress = context.Array("q", 2 * len(plans), lock=False)
    with context.Pool(len(plans), initializer=_share, initargs=(progress,)) as pool:
        running = pool.starmap_async(_process, plans)
        while not running.ready():
            running.wait(0.5)
            if sys.stderr.isatty():
                done, failed = sum(progress[0::2]), sum(progress[1::2])
                rate = (done + failed) / (time.monotonic() - started)
                click.echo(f"\r{done} requests, {rate:.0f}/s, {failed} failed ", nl=False, err=True)
        if sys.stderr.isatty():
            click.echo(err=True)
        results = running.get()
    report = _report(results, time.monotonic() - started)
    if json_output:
        click.echo(json.dumps(report))
    else:
        _print_table(report)
    for n, (cpu, result) in enumerate(zip(report["client_cpu"], results, strict=True)):
        if cpu > 0.9 and result["wall"] >= 1:
            click.echo(
                f"warning: client process {n} ran at {cpu:.0%} CPU: the client may be "
                "the bottleneck; add --processes",
                err=True,
            )
    if report["requests_failed"]:
        sys.exit(1)
