"""A real OpenAI-compatible transcription server for tests: answers as told, records what it got.

``POST /v1/audio/transcriptions``, multipart parsed with aiohttp's reader. Set
``mode`` to choose how the next requests are answered:

- ``stream``: OpenAI's SSE events (a ``transcript.text.delta`` per word, then
  ``transcript.text.done``) and ``data: [DONE]``;
- ``vllm``: vLLM's chunks (``choices[0].delta.content``) and ``data: [DONE]``;
- ``json``: one ``{"text": ...}``;
- ``500``, ``400`` (an OpenAI error body), ``slow`` (waits for ``release``),
  ``cut`` (one delta, then the connection is dropped), ``bad_json``,
  ``stream_error`` (one delta, then an error event).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import wave
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web

__all__ = ["FakeSTT", "Received", "fake_stts"]


@dataclasses.dataclass
class Received:
    """One request as the server read it."""

    fields: dict[str, str]
    filename: str | None
    content_type: str | None
    rate: int
    frames: int
    channels: int
    width: int
    authorization: str | None


class FakeSTT:
    """One transcription replica."""

    def __init__(self) -> None:
        self.mode = "stream"
        self.text = "hello from the fake"
        self.received: list[Received] = []
        self.waiting = asyncio.Event()  # "slow": a request is waiting for release
        self.release = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> FakeSTT:
        app = web.Application()
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _read(self, request: web.Request) -> Received:
        reader = await request.multipart()
        fields: dict[str, str] = {}
        wav = b""
        filename = content_type = None
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader), "no nested multipart"
            if part.name == "file":
                filename, content_type = part.filename, part.headers.get("Content-Type")
                wav = await part.read()
            else:
                fields[str(part.name)] = await part.text()
        with wave.open(io.BytesIO(wav)) as audio:
            return Received(
                fields,
                filename,
                content_type,
                audio.getframerate(),
                audio.getnframes(),
                audio.getnchannels(),
                audio.getsampwidth(),
                request.headers.get("Authorization"),
            )

    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await self._read(request))
        mode = self.mode
        if mode == "json":
            usage = {"type": "duration", "seconds": 1}
            return web.json_response({"text": self.text, "usage": usage})
        if mode == "500":
            return web.Response(status=500, text="model worker crashed")
        if mode == "400":
            error = {"message": "Invalid file format.", "type": "invalid_request_error"}
            return web.json_response({"error": {**error, "code": None}}, status=400)
        if mode == "bad_json":
            return web.Response(text="{not json", content_type="application/json")
        if mode == "slow":
            self.waiting.set()
            await self.release.wait()
            return web.json_response({"text": self.text})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = self.text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        if mode == "vllm":
            events: list[object] = [
                {"object": "transcription.chunk", "choices": [{"delta": {"content": p}}]}
                for p in pieces
            ]
        else:
            events = [{"type": "transcript.text.delta", "delta": p} for p in pieces]
            events.append({"type": "transcript.text.done", "text": self.text})
        if mode == "cut":
            await response.write(b"data: " + json.dumps(events[0]).encode() + b"\n\n")
            assert request.transport is not None
            request.transport.abort()
            return response
        if mode == "stream_error":
            events[1:] = [{"error": {"message": "CUDA out of memory", "type": "server_error"}}]
        for event in events:
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response


async def fake_stts(n: int) -> AsyncIterator[list[FakeSTT]]:
    """``n`` fake replicas, started, and stopped after."""
    servers = [await FakeSTT().start() for _ in range(n)]
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()
