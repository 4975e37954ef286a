"""The floor to compare against: a bare aiohttp WebSocket echo with the same wire format.

No channel, no engine interface, no close-code mapping, no metrics, no
logging: read a frame, decode it with msgspec, send one envelope per code
point and a stop envelope. Run: python benchmarks/baseline.py PORT
"""

from __future__ import annotations

import sys
import time
import uuid

import msgspec
import uvloop
from aiohttp import WSMsgType, web


class Message(msgspec.Struct):
    role: str
    content: str


class ChatRequest(msgspec.Struct):
    model: str
    messages: list[Message]


class Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class Choice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: str | None


class Chunk(msgspec.Struct, tag_field="object", tag="chat.completion.chunk"):
    id: str
    created: int
    model: str
    choices: list[Choice]


class Envelope(msgspec.Struct):
    data: Chunk
    id: str


decode = msgspec.json.Decoder(ChatRequest).decode
encode = msgspec.json.Encoder().encode


async def realtime(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    session, k, n = uuid.uuid4().hex, 0, 0
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            break
        req = decode(msg.data)
        k += 1
        chunk_id, created = f"chatcmpl-{session}-{k}", int(time.time())
        role: str | None = "assistant"
        for char in req.messages[-1].content:
            n += 1
            delta = Delta(role=role, content=char)
            chunk = Chunk(chunk_id, created, req.model, [Choice(0, delta, None)])
            await ws.send_frame(encode(Envelope(chunk, str(n))), WSMsgType.TEXT)
            role = None
        n += 1
        chunk = Chunk(chunk_id, created, req.model, [Choice(0, Delta(), "stop")])
        await ws.send_frame(encode(Envelope(chunk, str(n))), WSMsgType.TEXT)
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get("/v1/realtime", realtime)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
