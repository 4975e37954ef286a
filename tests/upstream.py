"""A real OpenAI-compatible upstream for tests: streams as vLLM does, or misbehaves on cue."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web


def vllm_chunks(body: dict[str, Any], words: list[str]) -> list[dict[str, Any]]:
    """The chunks vLLM streams for ``words``: role, content, finish, and usage if asked."""
    base = {
        "id": "chatcmpl-upstream-1",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
    }
    chunks = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
    ]
    chunks += [
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}
            ],
        }
        for w in words
    ]
    chunks.append(
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {},
                    "logprobs": None,
                    "finish_reason": "stop",
                    "stop_reason": None,
                }
            ],
        }
    )
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append(
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": 3,
                    "completion_tokens": len(words),
                    "total_tokens": 3 + len(words),
                },
            }
        )
    return chunks


def tool_call_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks of a model calling the request's first tool with ``{"city": "Oslo"}``,
    the arguments streamed in three pieces, as vLLM streams tool calls."""
    base = {
        "id": "chatcmpl-upstream-2",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
    }
    name = body["tools"][0]["function"]["name"]
    first = {
        "index": 0,
        "id": "call_up1",
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    deltas: list[dict[str, Any]] = [{"role": "assistant", "tool_calls": [first]}]
    deltas += [
        {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        for piece in ('{"city"', ': "Os', 'lo"}')
    ]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return chunks


def prompt_words(body: dict[str, Any]) -> list[str]:
    return str(body["messages"][-1]["content"]).split(" ")


class Upstream:
    """One upstream replica. Set ``mode`` to choose how it answers the next requests."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.bodies: list[dict[str, Any]] = []
        self.peers: list[tuple[str, int]] = []  # the daemon's side of each request
        self.headers: list[dict[str, str]] = []
        self.sent: list[list[dict[str, Any]]] = []
        self.streaming = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnected_at: float | None = None  # event-loop time
        self.release_done = asyncio.Event()  # "hold_done" mode: send [DONE] once set
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._transport: asyncio.BaseTransport | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Upstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = self._runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._transport = request.transport
        self.bodies.append(body)
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peername"))
        self.headers.append(dict(request.headers))
        mode = self.mode
        if mode.startswith("status:"):
            status = int(mode.split(":")[1])
            return web.json_response(
                {"error": {"message": f"upstream refuses with {status}", "type": "x"}},
                status=status,
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.set_cookie("route", "replica-sticky")  # as some load balancers do
        await response.prepare(request)
        if mode == "tool_call":
            chunks, mode = tool_call_chunks(body), "ok"
        else:
            chunks = vllm_chunks(body, prompt_words(body))
        self.sent.append(chunks)
        try:
            await getattr(self, "_" + mode)(response, chunks)
        except ConnectionResetError:
            self.disconnected_at = asyncio.get_running_loop().time()
            self.disconnected.set()
        return response

    async def _ok(self, response: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        for chunk in chunks:
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")

    async def _fancy_sse(self, response: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        """Comments, keep-alives, CRLF, data split over lines, events split over writes."""
        await response.write(b": keep-alive\r\n\r\n")
        for chunk in chunks:
            text = json.dumps(chunk, indent=1).encode()
            lines = b"".join(b"data: " + line + b"\r\n" for line in text.split(b"\n"))
            event = b"event: message\r\nid: 7\r\n" + lines + b"\r\n"
            half = len(event) // 2
            await response.write(event[:half])
            await response.write(event[half:])
            await response.write(b":\n\n")
        await response.write(b"data: [DONE]\r\n\r\n")

    async def _garbage(self, response: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        await response.write(b"data: {this is not json\n\n")

    async def _error_in_stream(
        self, response: web.StreamResponse, chunks: list[dict[str, Any]]
    ) -> None:
        await response.write(b"data: " + json.dumps(chunks[0]).encode() + b"\n\n")
        error = {"error": {"message": "CUDA out of memory", "type": "InternalServerError"}}
        await response.write(b"data: " + json.dumps(error).encode() + b"\n\n")

    async def _stall(self, response: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        await response.write(b"data: " + json.dumps(chunks[0]).encode() + b"\n\n")
        await asyncio.Event().wait()

    async def _silent(self, response: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        """Headers, then nothing: a model server that accepted the request and hangs."""
        await asyncio.Event().wait()

    async def _drop_after_first(
        self, response: web.StreamResponse, chunks: list[dict[str, Any]]
    ) -> None:
        await response.write(b"data: " + json.dumps(chunks[0]).encode() + b"\n\n")
        assert self._transport is not None
        self._transport.abort()

    async def _hold_done(self, response: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        """Every chunk, then [DONE] only once ``release_done`` is set."""
        for chunk in chunks:
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.streaming.set()
        await self.release_done.wait()
        await response.write(b"data: [DONE]\n\n")

    async def _huge_line(self, response: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        """A line that never ends, sent until the client goes away."""
        await response.write(b"data: ")
        while True:
            await response.write(b"x" * 1024)
            await asyncio.sleep(0.001)

    async def _endless(self, response: web.StreamResponse, chunks: list[dict[str, Any]]) -> None:
        """Streams until the client goes away, as a model generating a long answer."""
        content = chunks[1]
        while True:
            await response.write(b"data: " + json.dumps(content).encode() + b"\n\n")
            self.streaming.set()
            await asyncio.sleep(0.005)


async def started(
    n: int, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[list[Upstream]]:
    upstreams = [await Upstream().start(ssl_context) for _ in range(n)]
    try:
        yield upstreams
    finally:
        for upstream in upstreams:
            await upstream.stop()
