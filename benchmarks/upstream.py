"""A fast OpenAI-compatible upstream for the proxy scenario: it streams each prompt back.

One chunk per code point (the first with the role), a stop chunk, [DONE], all
written as fast as the socket takes them. Run: python benchmarks/upstream.py PORT
"""

from __future__ import annotations

import sys
import time

import msgspec
import uvloop
from aiohttp import web

encode = msgspec.json.Encoder().encode


class Message(msgspec.Struct):
    role: str
    content: str


class Body(msgspec.Struct):
    model: str
    messages: list[Message]


decode = msgspec.json.Decoder(Body).decode


async def chat(request: web.Request) -> web.StreamResponse:
    body = decode(await request.read())
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    base = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.model,
    }
    for i, char in enumerate(body.messages[-1].content):
        delta = {"role": "assistant", "content": char} if i == 0 else {"content": char}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        await response.write(b"data: " + encode(chunk) + b"\n\n")
    stop = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    await response.write(b"data: " + encode(stop) + b"\n\ndata: [DONE]\n\n")
    return response


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
