"""Soak and chaos runs against a real daemon (by hand, not CI); each prints its figures.

    python benchmarks/chaos.py shutdown --rounds 100
    python benchmarks/chaos.py hostile --frames 100000
    python benchmarks/chaos.py faults
    python benchmarks/chaos.py workers
    python benchmarks/chaos.py soak --connections 1000 --minutes 10

Goals (benchmarks/README.md): 0 protocol errors, 0 tracebacks, 0 x 1011 from
client input, 0 answers cut without an error envelope, 0 connections without
a Close on SIGTERM, Close to TCP close under 50 ms, RSS flat after warm-up.
Clients are the ``websockets`` library (it answers a Close at once) and raw
sockets; times are taken at the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

from run import ROOT, Verifier, free_port, prompt, request
from websockets.asyncio.client import connect

sys.path.insert(0, str(ROOT))
from tests.rawws import RawWebSocket
from tests.upstream import Upstream

PATH = "/v1/realtime"


class Daemon:
    """``realtime-daemon serve`` as a subprocess, its JSON log in a file."""

    def __init__(self, *args: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        argv = [
            sys.executable,
            "-m",
            "realtime_daemon",
            "serve",
            "--port",
            str(self.port),
            "--log-format",
            "json",
            *args,
        ]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w")
        )

    async def ready(self) -> None:
        for _ in range(300):
            if '"server_ready"' in self.log.read_text():
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("daemon did not start")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{PATH}"

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def rss_mb(self) -> float:
        return int(Path(f"/proc/{self.proc.pid}/statm").read_text().split()[1]) * 4096 / 1e6

    def children(self) -> list[int]:
        pid = self.proc.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def chunk_text(envelope: dict[str, object]) -> str:
    data = envelope.get("data")
    if not isinstance(data, dict):
        return ""
    return str(data["choices"][0]["delta"].get("content", ""))


# -- shutdown: SIGTERM mid-stream ------------------------------------------------------


async def one_client(
    url: str, text: str, started: asyncio.Event, *, until_close: bool = True
) -> dict[str, object]:
    """One answer over a raw socket; with ``until_close``, then the server's Close,
    answered at once, and the time from that answer to the server closing TCP."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    ws = await RawWebSocket.connect(host, int(port), PATH)
    ws.send_frame(request(text).encode())
    loop = asyncio.get_running_loop()
    got, cut, code, tcp_ms = "", False, None, 0.0
    try:
        while True:
            opcode, payload = await ws.read_frame()
            if opcode == 0x9:
                ws.send_frame(payload, opcode=0xA)  # pong: the heartbeat must hold
                continue
            started.set()
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0]
                ws.send_frame(payload[:2], opcode=0x8)  # the Close reply, at once
                replied = loop.time()
                await ws.reader.read()  # until the server closes TCP
                tcp_ms = (loop.time() - replied) * 1000
                break
            envelope = json.loads(payload)
            got += chunk_text(envelope)
            cut = cut or envelope.get("event") == "error"
            if got == text and not until_close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        code = 1006  # the connection went without a Close
    ws.abort()
    return {"complete": got == text, "cut_notice": cut, "code": code, "tcp_ms": tcp_ms}


async def shutdown(args: argparse.Namespace, work: Path) -> None:
    exits, tcp_ms, no_close, silent_cuts, answers = [], [], 0, 0, 0
    for _ in range(args.rounds):
        daemon = Daemon(
            "--echo-delay-ms",
            "2",
            "--heartbeat",
            "0.2",
            "--shutdown-timeout",
            "5",
            log=work / "shutdown.log",
        )
        await daemon.ready()
        started = [asyncio.Event() for _ in range(args.clients)]
        texts = [prompt(random.randint(50, 300)) for _ in started]
        clients = [
            asyncio.create_task(one_client(daemon.url, text, event))
            for text, event in zip(texts, started, strict=True)
        ]
        await asyncio.gather(*(e.wait() for e in started))
        sent = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*clients)
        code = await asyncio.to_thread(daemon.proc.wait)
        exits.append((time.monotonic() - sent, code))
        for r in results:
            answers += 1
            no_close += r["code"] != 1001
            silent_cuts += not r["complete"] and not r["cut_notice"]
            tcp_ms.append(r["tcp_ms"])
    print(f"shutdown: {args.rounds} rounds x {args.clients} clients mid-stream, SIGTERM")
    print(
        f"  exit codes: {sorted({c for _, c in exits})}; SIGTERM to exit p50 "
        f"{statistics.median(t for t, _ in exits):.3f} s, max {max(t for t, _ in exits):.3f} s "
        f"(answers need up to 0.6 s)"
    )
    print(
        f"  connections without a 1001 Close: {no_close} of {answers}; "
        f"answers cut without an error envelope: {silent_cuts}"
    )
    print(
        f"  client's Close reply to TCP close: p50 {statistics.median(tcp_ms):.2f} ms, "
        f"p99 {sorted(tcp_ms)[int(len(tcp_ms) * 0.99)]:.2f} ms, max {max(tcp_ms):.2f} ms"
    )


# -- hostile frames --------------------------------------------------------------------


_REALTIME_TYPES = [
    "session.update",
    "conversation.item.create",
    "response.create",
    "response.cancel",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "input_audio_buffer.append",
    "nope",
]
_JUNK: list[object] = [
    None,
    1,
    "",
    "x" * 70,
    [],
    {},
    [{"type": "item_reference", "id": [1]}],
    {"resumable": True},
    {"type": "message", "role": ["user"], "content": 3},
    {"tools": [{"name": 5}]},
    {"conversation": "none", "input": "x"},
]


def realtime_frame(rng: random.Random) -> bytes:
    """A Realtime client event with junk in its fields."""
    event = {"type": rng.choice(_REALTIME_TYPES)}
    for name in rng.sample(
        ["session", "item", "response", "item_id", "response_id", "event_id", "previous_item_id"],
        rng.randrange(0, 4),
    ):
        event[name] = rng.choice(_JUNK)
    return json.dumps(event).encode()


def hostile_frames(rng: random.Random, realtime: bool = False) -> tuple[bytes, int, bool, bool]:
    """(payload, opcode, fin, masked) of one generated bad frame."""
    good = request("x").encode()
    kind = rng.randrange(12)
    if realtime and kind in (3, 9, 10):
        return realtime_frame(rng), 1, True, True
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 80)), 1, True, True  # random bytes as text
    if kind == 1:
        return good.replace(b'"x"', b'"x\xff"'), 1, True, True  # invalid UTF-8 in a string
    if kind == 2:
        return good[:-1] + b', "k\xc3": 1}', 1, True, True  # invalid UTF-8 in an unknown key
    if kind == 3:
        body = {"model": rng.choice([1, None, [], {}]), "messages": 3}
        return json.dumps(body).encode(), 1, True, True
    if kind == 4:
        return b"x" * rng.randrange(1, 50), 2, True, True  # binary
    if kind == 5:
        return good, rng.choice([3, 4, 5, 6, 7, 11, 15]), True, True  # reserved opcodes
    if kind == 6:
        return b"p" * 126, 9, True, True  # oversized ping
    if kind == 7:
        return struct.pack("!H", rng.choice([999, 1005, 1006, 1015, 2000, 5000])), 8, True, True
    if kind == 8:
        return good, 0, True, True  # continuation without a start
    if kind == 9:
        frame = {
            "type": rng.choice(["request.cancel", "session.update", "nope", "x" * 70]),
            "request_id": rng.choice([1, "", "ok", None]),
            "session": rng.choice([{"max_concurrent_requests": -1}, 3, {"x": 1}]),
        }
        return json.dumps(frame).encode(), 1, True, True
    if kind == 10:
        body = request("x")[:-1] + ', "request_id": ' + json.dumps(rng.choice(["\t", 5, "a" * 65]))
        return (body + "}").encode(), 1, True, True
    return b"[" * rng.randrange(1000, 5000), 1, True, True  # deep nesting


async def hostile(args: argparse.Namespace, work: Path) -> None:
    daemon = Daemon("--echo-delay-ms", "0", log=work / "hostile.log")
    await daemon.ready()
    rng = random.Random(7)
    rss_start, sent, connections, served = daemon.rss_mb(), 0, 0, 0
    path = PATH + ("?model=echo" if args.realtime else "")
    while sent < args.frames:
        ws = await RawWebSocket.connect("127.0.0.1", daemon.port, path)
        connections += 1
        for _ in range(rng.randrange(1, 8)):
            payload, opcode, fin, masked = hostile_frames(rng, args.realtime)
            ws.send_frame(payload, opcode=opcode, fin=fin, masked=masked)
            sent += 1
        ws.abort()
        if connections % 200 == 0:  # a good client is served after every batch
            async with connect(daemon.url) as good:
                await good.send(request("fine"))
                text = ""
                while not text.endswith("fine"):
                    text += chunk_text(json.loads(await good.recv()))
            served += 1
    await asyncio.sleep(1)  # let the last connections close
    rss_end = daemon.rss_mb()
    daemon.stop()
    lines = daemon.lines()
    tracebacks = sum("exception" in line for line in lines)
    errors = sum(line.get("level") == "error" for line in lines)
    codes: dict[int, int] = {}
    for line in lines:
        if line.get("event") == "connection_closed":
            codes[int(line["code"])] = codes.get(int(line["code"]), 0) + 1
    dialect = "Realtime" if args.realtime else "chat"
    print(f"hostile ({dialect}): {sent} generated frames over {connections} connections")
    print(
        f"  tracebacks: {tracebacks}; error lines: {errors}; closes by code: "
        f"{dict(sorted(codes.items()))} (1011: {codes.get(1011, 0)})"
    )
    print(f"  good client served after every 200 connections: {served} times")
    print(f"  RSS {rss_start:.1f} -> {rss_end:.1f} MB ({rss_end - rss_start:+.1f})")


# -- upstream faults -------------------------------------------------------------------


async def faults(args: argparse.Namespace, work: Path) -> None:
    upstream = await Upstream().start()
    daemon = Daemon(
        "--engine",
        "openai",
        "--upstream-url",
        upstream.url,
        "--upstream-read-timeout",
        "0.5",
        "--upstream-max-event-size",
        "65536",
        log=work / "faults.log",
    )
    await daemon.ready()
    modes = [
        "drop_after_first",
        "stall",
        "status:503",
        "status:429",
        "status:400",
        "garbage",
        "error_in_stream",
        "huge_line",
    ]
    print("faults: each upstream fault, then a good request on the same session")
    async with connect(daemon.url) as ws:
        for n, mode in enumerate(modes):
            upstream.mode = mode
            await ws.send(request("a b c")[:-1] + f', "request_id": "f{n}"}}')
            while "error" not in (envelope := json.loads(await ws.recv())):
                pass
            upstream.mode = "ok"
            await ws.send(request("x y")[:-1] + f', "request_id": "g{n}"}}')
            text = ""
            while not text.endswith("y"):
                text += chunk_text(json.loads(await ws.recv()))
            error = envelope["error"]
            print(f"  {mode:18} -> {error['code']:24} {error.get('upstream', {})}  then answered")
    daemon.stop()
    await upstream.stop()
    lines = daemon.lines()
    print(
        f"  tracebacks: {sum('exception' in line for line in lines)}; "
        f"upstream URL shown to the client: never (the envelopes above)"
    )


# -- workers: SIGKILL one mid-stream ---------------------------------------------------


async def workers(args: argparse.Namespace, work: Path) -> None:
    daemon = Daemon("--workers", "2", "--echo-delay-ms", "5", log=work / "workers.log")
    await daemon.ready()
    children = daemon.children()
    started = [asyncio.Event() for _ in range(args.clients)]
    clients = []
    for event in started:  # one at a time: both workers get some
        clients.append(
            asyncio.create_task(one_client(daemon.url, prompt(400), event, until_close=False))
        )
        await event.wait()
    held = {pid: streams(pid, daemon.port) for pid in children}
    victim = max(held, key=lambda pid: held[pid])
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    while len(set(daemon.children()) - {victim}) < 2:  # noqa: ASYNC110 (a process to poll)
        await asyncio.sleep(0.01)
    replaced = time.monotonic() - killed
    results = await asyncio.gather(*clients)
    daemon.stop()
    whole = sum(bool(r["complete"]) for r in results)
    gone = sum(r["code"] == 1006 for r in results)
    print(
        f"workers: 2 workers, {args.clients} streams ({held[victim]} on the worker SIGKILLed "
        f"mid-stream, {sum(held.values()) - held[victim]} on the other)"
    )
    print(
        f"  replaced in {replaced:.3f} s; answers completed: {whole}; streams ended without "
        f"a Close (on the killed worker): {gone}"
    )


def streams(pid: int, port: int) -> int:
    """The daemon connections process ``pid`` holds (from ss)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    return sum(f":{port} " in line and f"pid={pid}," in line for line in out.splitlines())


# -- soak ------------------------------------------------------------------------------


async def soak_client(url: str, deadline: float, counts: dict[str, int]) -> None:
    verifier = Verifier()
    async with connect(url, max_size=None) as ws:
        while time.monotonic() < deadline:
            text = prompt(random.randint(10, 60), random.randrange(4))
            await ws.send(request(text))
            frames: list[bytes] = []
            while True:
                raw = await ws.recv(decode=False)
                frames.append(raw)
                if b'"finish_reason":"stop"' in raw:
                    break
            try:
                verifier.answer(frames, text)
            except AssertionError:
                counts["errors"] += 1
            counts["requests"] += 1
            counts["chunks"] += len(frames)


async def soak(args: argparse.Namespace, work: Path) -> None:
    daemon = Daemon(
        "--echo-delay-ms",
        "20",
        "--max-connections",
        str(args.connections + 100),
        log=work / "soak.log",
    )
    await daemon.ready()
    counts = {"requests": 0, "chunks": 0, "errors": 0}
    deadline = time.monotonic() + args.minutes * 60
    clients = []
    for _ in range(args.connections):
        clients.append(asyncio.create_task(soak_client(daemon.url, deadline, counts)))
    samples = []
    while True:
        await asyncio.sleep(min(30, args.minutes * 6))
        if time.monotonic() >= deadline:
            break  # clients are closing: no longer the steady state
        samples.append((time.monotonic(), daemon.rss_mb(), daemon.fds()))
        print(
            f"  {len(samples):3} RSS {samples[-1][1]:.1f} MB, fds {samples[-1][2]}, "
            f"requests {counts['requests']}",
            flush=True,
        )
    await asyncio.gather(*clients, return_exceptions=True)
    await asyncio.sleep(1)
    after_fds = daemon.fds()
    daemon.stop()
    warm = samples[len(samples) // 3 :]
    slope = (warm[-1][1] - warm[0][1]) / max((warm[-1][0] - warm[0][0]) / 60, 1e-9)
    print(
        f"soak: {args.connections} connections x {args.minutes} min: {counts['requests']} "
        f"requests, {counts['chunks']} chunks verified, {counts['errors']} protocol errors"
    )
    print(
        f"  RSS after warm-up {warm[0][1]:.1f} -> {warm[-1][1]:.1f} MB ({slope:+.2f} MB/min); "
        f"fds after close {after_fds}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=["shutdown", "hostile", "faults", "workers", "soak"])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="hostile: connect as Realtime clients (?model=echo), events with junk",
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "realtime-daemon-chaos"
    work.mkdir(exist_ok=True)
    scenario = {
        "shutdown": shutdown,
        "hostile": hostile,
        "faults": faults,
        "workers": workers,
        "soak": soak,
    }[args.scenario]
    asyncio.run(scenario(args, work))


if __name__ == "__main__":
    main()
