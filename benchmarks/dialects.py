"""Server CPU per streamed text delta: the Realtime and Responses dialects against chat's.

One daemon (echo engine, no delay, uvloop) on its own CPU; one connection
per dialect asks for RESPONSES answers of CHARS characters, one after the
other (a Realtime session runs one in-band response at a time), and
verifies every answer's text. In band, the conversation grows by two items
a turn and each response sends all of it to the engine (as a chat client
resending its history would); out of band, each response's input is its
one question. The Responses dialect chains each response to the one before
(``previous_response_id``), so its conversation grows as in band;
unchained, each response's input is its one question. The
figure is the daemon's CPU time (user +
system, from /proc) over the text deltas it streamed: a chat chunk, or a
``response.output_text.delta`` event, one per character.

With ``--upstream``, the daemon relays through the openai engine from
``upstream.py`` (a fast OpenAI-compatible server streaming each prompt back,
one chunk per code point) instead of echoing: CPU per relayed chunk.

    python benchmarks/dialects.py [--repeats 5] [--responses 200] [--chars 500] [--upstream]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any

import aiohttp
import msgspec
import uvloop
from run import ALPHABET, Server, summary

_decode = msgspec.json.decode
DIALECTS = ("chat", "realtime", "realtime out of band", "responses", "responses unchained")


def text(n: int, salt: int) -> str:
    return "".join(ALPHABET[(i + salt) % len(ALPHABET)] for i in range(n))


async def chat(ws: aiohttp.ClientWebSocketResponse, prompt: str) -> int:
    """One chat request; its text deltas, verified."""
    request = {"model": "echo", "messages": [{"role": "user", "content": prompt}]}
    await ws.send_str(msgspec.json.encode(request).decode())
    got = []
    while True:
        envelope = _decode((await ws.receive()).data)
        choice = envelope["data"]["choices"][0]
        if choice["finish_reason"]:
            break
        got.append(choice["delta"]["content"])
    assert "".join(got) == prompt
    return len(got)


async def realtime(ws: aiohttp.ClientWebSocketResponse, prompt: str, in_band: bool) -> int:
    """One Realtime turn (an item, then a response; or one out-of-band response with
    the item as its input); its text deltas, verified."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}
    if in_band:
        await ws.send_str(
            msgspec.json.encode({"type": "conversation.item.create", "item": item}).decode()
        )
        await ws.send_str('{"type":"response.create"}')
    else:
        create = {"type": "response.create", "response": {"conversation": "none", "input": [item]}}
        await ws.send_str(msgspec.json.encode(create).decode())
    got = []
    while True:
        event: dict[str, Any] = _decode((await ws.receive()).data)
        kind = event["type"]
        if kind == "response.output_text.delta":
            got.append(event["delta"])
        elif kind == "response.done":
            assert event["response"]["status"] == "completed", event
            break
        elif kind == "error":
            raise AssertionError(event)
    assert "".join(got) == prompt
    return len(got)


async def responses(
    ws: aiohttp.ClientWebSocketResponse, prompt: str, previous: str | None
) -> tuple[int, str]:
    """One Responses turn chained to ``previous``; its text deltas, verified, and its id."""
    create = {"type": "response.create", "model": "echo", "input": prompt}
    if previous is not None:
        create["previous_response_id"] = previous
    await ws.send_str(msgspec.json.encode(create).decode())
    got = []
    while True:
        event: dict[str, Any] = _decode((await ws.receive()).data)
        kind = event["type"]
        if kind == "response.output_text.delta":
            got.append(event["delta"])
        elif kind == "response.completed":
            break
        elif kind in ("error", "response.failed"):
            raise AssertionError(event)
    assert "".join(got) == prompt
    return len(got), event["response"]["id"]


async def run(server: Server, dialect: str, count: int, chars: int) -> dict[str, float]:
    path = server.url + ("?model=echo" if dialect.startswith("realtime") else "")
    if dialect.startswith("responses"):
        path = path.replace("/v1/realtime", "/v1/responses")
    async with aiohttp.ClientSession() as session, session.ws_connect(path) as ws:
        if dialect.startswith("realtime"):
            assert _decode((await ws.receive()).data)["type"] == "session.created"
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        deltas = 0
        previous = None
        for i in range(count):
            prompt = text(chars, i)
            if dialect == "chat":
                deltas += await chat(ws, prompt)
            elif dialect.startswith("responses"):
                got, last = await responses(ws, prompt, previous)
                previous = last if dialect == "responses" else None
                deltas += got
            else:
                deltas += await realtime(ws, prompt, in_band=dialect == "realtime")
        cpu, wall = server.cpu_seconds() - cpu0, time.perf_counter() - t0
    return {"server µs/delta": cpu / deltas * 1e6, "deltas/s": deltas / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--responses", type=int, default=200)
    parser.add_argument("--chars", type=int, default=500)
    parser.add_argument("--upstream", action="store_true", help="relay from upstream.py")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = frozenset(cpus[:-1] or cpus)
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
    uvloop.install()
    items = 2 * args.responses + 10
    engine = []
    upstream = None
    if args.upstream:
        upstream = Server(
            "upstream", [sys.executable, "benchmarks/upstream.py", "{port}"], cpus=frozenset(cpus)
        )
        upstream.start()
        engine = ["--engine", "openai", "--upstream-url", f"http://127.0.0.1:{upstream.port}/v1"]
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
            "--max-conversation-items",
            str(items),
            "--max-conversation-bytes",
            str(1 << 30),
            *engine,
        ],
        cpus=server_cpus,
    )
    server.start()
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(args.repeats):
            for dialect in DIALECTS:
                got = asyncio.run(run(server, dialect, args.responses, args.chars))
                for metric, value in got.items():
                    results.setdefault((metric, dialect), []).append(value)
    finally:
        server.stop()
        if upstream is not None:
            upstream.stop()
    print(
        f"# {time.strftime('%Y-%m-%d')}, {args.repeats} repeats of {args.responses} answers"
        f" of {args.chars} characters, {'relayed from upstream.py' if args.upstream else 'echo'},"
        f" server on CPUs {sorted(server_cpus)},"
        " median (min-max)\n"
    )
    print("| dialect | server µs/delta | deltas/s | µs/delta vs chat |")
    print("| --- | --- | --- | --- |")
    chat_cost = statistics.median(results[("server µs/delta", "chat")])
    for dialect in DIALECTS:
        cost, rate = results[("server µs/delta", dialect)], results[("deltas/s", dialect)]
        ratio = statistics.median(cost) / chat_cost
        print(f"| {dialect} | {summary(cost)} | {summary(rate)} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
