"""A real OpenAI-compatible speech server for tests: streams PCM as told, records what it got.

``POST /v1/audio/speech`` with OpenAI's JSON body. The audio of an input is
:data:`MS_PER_CHARACTER` ms of a 440 Hz tone per character (PCM16 mono at
24 kHz: :func:`pcm_for`), so a test knows how long each answer is; it goes out
as ``audio/pcm`` in writes of :attr:`FakeTTS.chunk` bytes (odd by default, so
that a client must carry a sample's byte from one read to the next). Set
``mode`` to choose how the next requests are answered:

- ``stream``: the whole audio, write by write (``pace`` seconds between two
  writes, if set: a model speaking at its own speed);
- ``500``, ``400`` (an OpenAI error body), ``mp3`` (200 with ``audio/mpeg``);
- ``slow``: the head, then nothing until ``release`` is set, then the audio;
- ``stall``: the first write of audio, then nothing until ``release``, then the rest;
- ``cut``: the first write of audio, then the connection is dropped.

Each request is a :class:`Received`: its JSON, its Authorization header, and
whether and when (``time.monotonic()``) its client closed the connection
before the answer's end. aiohttp's handler cancellation tells the server so
at once, whatever the handler was waiting for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from aiohttp import web

__all__ = ["MS_PER_CHARACTER", "RATE", "FakeTTS", "Received", "fake_ttss", "pcm_for"]

RATE = 24000
MS_PER_CHARACTER = 40
"""Milliseconds of audio per character of input."""


def pcm_for(text: str) -> bytes:
    """The audio the fake speaks for ``text``: a tone, 40 ms per character."""
    samples = len(text) * RATE * MS_PER_CHARACTER // 1000
    tone = 8000 * np.sin(2 * np.pi * 440 * np.arange(samples) / RATE)
    return tone.astype("<i2").tobytes()


@dataclasses.dataclass
class Received:
    """One request, as the server read it, and how its answer ended."""

    body: dict[str, Any]
    authorization: str | None
    finished: bool = False  # the whole answer was written
    closed_at: float | None = None  # time.monotonic() when the client closed it mid-answer


class FakeTTS:
    """One speech replica."""

    def __init__(self) -> None:
        self.mode = "stream"
        self.chunk = 4801
        self.pace: float | None = None
        self.received: list[Received] = []
        self.answering = asyncio.Event()  # a request's audio started ("stall": is waiting)
        self.waiting = asyncio.Event()  # "slow" or "stall": a request waits for release
        self.release = asyncio.Event()
        self.closed = asyncio.Event()  # a client closed a request mid-answer
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> FakeTTS:
        app = web.Application()
        app.router.add_post("/v1/audio/speech", self._speech)
        self._runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        got = Received(await request.json(), request.headers.get("Authorization"))
        self.received.append(got)
        try:
            response = await self._answer(request, got)
        except (asyncio.CancelledError, ConnectionResetError):
            # The client went away mid-answer: aiohttp cancels the handler.
            got.closed_at = time.monotonic()
            self.closed.set()
            raise
        got.finished = True
        return response

    async def _answer(self, request: web.Request, got: Received) -> web.StreamResponse:
        mode = self.mode
        if mode == "500":
            return web.Response(status=500, text="voice model crashed")
        if mode == "400":
            error = {"message": "Voice 'nobody' not found.", "type": "invalid_request_error"}
            return web.json_response({"error": {**error, "param": "voice"}}, status=400)
        kind = "audio/mpeg" if mode == "mp3" else "audio/pcm"
        response = web.StreamResponse(headers={"Content-Type": kind})
        await response.prepare(request)
        audio = pcm_for(str(got.body["input"]))
        writes = [audio[i : i + self.chunk] for i in range(0, len(audio), self.chunk)]
        if mode == "slow":
            self.waiting.set()
            await self.release.wait()
        for n, piece in enumerate(writes):
            await response.write(piece)
            self.answering.set()
            if n == 0 and mode == "cut":
                assert request.transport is not None
                request.transport.abort()
                return response
            if n == 0 and mode == "stall":
                self.waiting.set()
                await self.release.wait()
            if self.pace is not None:
                await asyncio.sleep(self.pace)  # the model's pace, not a synchronisation
        await response.write_eof()
        return response


async def fake_ttss(n: int) -> AsyncIterator[list[FakeTTS]]:
    """``n`` fake replicas, started, and stopped after."""
    servers = [await FakeTTS().start() for _ in range(n)]
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()
