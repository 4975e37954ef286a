"""A twenty-step tool loop over the Responses dialect: chained by id against resent history.

The daemon runs the openai engine in front of an upstream of this process's
own (an OpenAI-compatible server that calls the request's tool until the
conversation holds STEPS tool results, then answers in text; every tool
result the client sends is RESULT bytes). One WebSocket runs the loop twice
per repeat: ``chained`` sends each step's function_call_output and the
previous response's id; ``resent`` sends the whole conversation each step,
as a client without server state does (``store: false``, no id). Reported
per step: bytes the client sent, bytes the upstream received (the chat
requests), and wall time.

    python benchmarks/responses_loop.py [--repeats 5] [--steps 20] [--result 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import aiohttp
import uvloop
from aiohttp import web
from run import Server, free_port, summary

TOOL = {
    "type": "function",
    "name": "run_step",
    "description": "Runs one step of the task.",
    "parameters": {"type": "object", "properties": {"step": {"type": "integer"}}},
}


class Upstream:
    """Calls the tool until ``steps`` results are in, then says ``done``; counts bytes."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.received = 0

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.received += len(raw)
        body = json.loads(raw)
        results = sum(1 for m in body["messages"] if m["role"] == "tool")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        if results < self.steps:
            call = {
                "index": 0,
                "id": f"call_{results}",
                "type": "function",
                "function": {"name": "run_step", "arguments": json.dumps({"step": results})},
            }
            deltas = [({"role": "assistant", "tool_calls": [call]}, None), ({}, "tool_calls")]
        else:
            deltas = [({"role": "assistant", "content": "done"}, None), ({}, "stop")]
        for delta, finish in deltas:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response


async def turn(ws: aiohttp.ClientWebSocketResponse, create: dict[str, Any]) -> tuple[dict, int]:
    """Send one create; its completed response, and the bytes sent."""
    frame = json.dumps({"type": "response.create", **create})
    await ws.send_str(frame)
    while True:
        event = json.loads((await ws.receive()).data)
        if event["type"] == "response.completed":
            return event["response"], len(frame.encode())
        if event["type"] in ("error", "response.failed", "response.incomplete"):
            raise AssertionError(event)


async def loop(url: str, upstream: Upstream, chained: bool, result: str) -> dict[str, float]:
    """One tool loop; bytes and time per step."""
    sent, received0 = 0, upstream.received
    history: list[dict[str, Any]] = [{"role": "user", "content": "Run the task."}]
    create: dict[str, Any] = {"model": "m", "tools": [TOOL], "input": history}
    if not chained:
        create["store"] = False
    steps = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        t0 = time.perf_counter()
        while True:
            response, size = await turn(ws, create)
            sent += size
            steps += 1
            call = response["output"][0]
            if call["type"] != "function_call":
                assert response["output"][0]["content"][0]["text"] == "done"
                break
            output = {"type": "function_call_output", "call_id": call["call_id"], "output": result}
            if chained:
                create = {
                    "model": "m",
                    "tools": [TOOL],
                    "input": [output],
                    "previous_response_id": response["id"],
                }
            else:
                history += [{k: call[k] for k in ("type", "call_id", "name", "arguments")}, output]
                create = {"model": "m", "tools": [TOOL], "input": history, "store": False}
        wall = time.perf_counter() - t0
    return {
        "client bytes/step": sent / steps,
        "upstream bytes/step": (upstream.received - received0) / steps,
        "ms/step": wall / steps * 1e3,
    }


async def run(args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    upstream = Upstream(args.steps)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
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
            f"http://127.0.0.1:{port}/v1",
            "--heartbeat",
            "0",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
        ],
    )
    daemon.start()
    url = daemon.url.replace("/v1/realtime", "/v1/responses")
    results: dict[tuple[str, str], list[float]] = {}
    result = "x" * args.result
    try:
        for _ in range(args.repeats):
            for mode in ("chained", "resent"):
                got = await loop(url, upstream, mode == "chained", result)
                for metric, value in got.items():
                    results.setdefault((metric, mode), []).append(value)
    finally:
        daemon.stop()
        await runner.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--result", type=int, default=2000, help="bytes of each tool result")
    args = parser.parse_args()
    uvloop.install()
    results = asyncio.run(run(args))
    print(
        f"# {time.strftime('%Y-%m-%d')}, {args.repeats} repeats of a {args.steps}-step loop"
        f" ({args.steps + 1} responses), tool results of {args.result} bytes, median (min-max)\n"
    )
    print("| per step | chained | resent | resent / chained |")
    print("| --- | --- | --- | --- |")
    for metric in ("client bytes/step", "upstream bytes/step", "ms/step"):
        chained, resent = results[(metric, "chained")], results[(metric, "resent")]
        ratio = statistics.median(resent) / statistics.median(chained)
        print(f"| {metric} | {summary(chained)} | {summary(resent)} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
