"""Engines for tests: each one exposes what the daemon did to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec

from realtime_daemon.config import Config
from realtime_daemon.engines.base import Context, RequestContext
from realtime_daemon.engines.echo import EchoEngine
from realtime_daemon.wire.chat import Envelope, Request

ECHO = EchoEngine(Config(echo_delay_ms=0))


class FailingEngine:
    """Echoes ``good_chunks`` chunks of the request, then raises."""

    def __init__(self, good_chunks: int, message: str = "boom") -> None:
        self._good = good_chunks
        self._message = message

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        sent = 0
        async for envelope in ECHO.answer(request, context):
            if sent == self._good:
                break
            sent += 1
            yield envelope
        raise RuntimeError(self._message)


class GatedEngine:
    """Echo engine whose answers wait until ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        self.started.set()
        await self.gate.wait()
        async for envelope in ECHO.answer(request, context):
            yield envelope


class EndlessEngine:
    """Streams chunks of one answer until stopped, and records how it ended."""

    def __init__(self) -> None:
        self.streaming = asyncio.Event()
        self.ended = asyncio.Event()
        self.stopped_when_ended: bool | None = None
        self.chunks = 0

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        try:
            while True:
                await asyncio.sleep(0.001)
                self.chunks += 1
                self.streaming.set()
                yield context.delta("x")
        finally:
            self.stopped_when_ended = context.is_stopped()
            self.ended.set()


class InBandErrorEngine:
    """Answers the first request with an error envelope only, then echoes the rest."""

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        if context.index == 1:
            yield Envelope(event="error", comment=["upstream said no"])
            return
        async for envelope in ECHO.answer(request, context):
            yield envelope


class BlastEngine:
    """Streams 64 KiB chunks as fast as the socket takes them, until stopped."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        big = request.chat.model * 65536
        try:
            while True:
                yield Envelope(comment=[big])
        finally:
            self.ended.set()


class TurnCounter:
    """A bidirectional engine (``generate`` once per session) that keeps state across
    requests: each answer is one chunk, ``turn <n>: <prompt>``, then a stop chunk."""

    def __init__(self) -> None:
        self.sessions = 0
        self.closed = 0

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        self.sessions += 1
        turn = 0
        try:
            async for request in requests:
                turn += 1
                reply = RequestContext(context, turn, request.chat.model)
                text = request.chat.messages[-1].content
                yield reply.delta(f"turn {turn}: {text}")
                if text == "wait":
                    await context.stopped()
                yield reply.finish()
        finally:
            self.closed += 1


class PromptGatedEngine:
    """Echoes at once, except a prompt of "slow", which waits for ``gate`` first."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.slow_started = asyncio.Event()

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        if request.chat.messages[-1].content == "slow":
            self.slow_started.set()
            await self.gate.wait()
        async for envelope in ECHO.answer(request, context):
            yield envelope


class ShoutingEcho:
    """Answers with the last message in capitals, in one chunk (a second engine to route to)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        yield context.delta(str(request.chat.messages[-1].content).upper())
        yield context.finish()


class MessageCounter:
    """Answers ``<n> messages: <last>``, slowly when the last message is ``slow``, so that a
    client's history and its cancels can be seen."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        last = str(request.chat.messages[-1].content)
        yield context.delta(f"{len(request.chat.messages)} messages: {last}")
        if last == "slow":
            while True:
                await asyncio.sleep(0.05)
                yield context.delta(".")
        yield context.finish()


class DropsAChunk:
    """Echoes, but leaves out each answer's second chunk: a broken engine for checkers."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        n = 0
        async for envelope in ECHO.answer(request, context):
            n += 1
            if n != 2:
                yield envelope


class Tagged:
    """Answers every request with its options' ``tag``, ``repeat`` times: an engine with
    options of its own."""

    class Options(msgspec.Struct, frozen=True, kw_only=True):
        tag: str = "plain"
        repeat: Annotated[int, msgspec.Meta(ge=1)] = 1

    def __init__(self, config: Config, options: Options) -> None:
        self.text = options.tag * options.repeat

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        yield context.delta(self.text)
        yield context.finish("stop")


class RecordingEngine:
    """Echoes, and keeps the chat-completion body of every request it gets; a last
    message of "hold" is never answered (until cancelled)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        self.bodies.append(json.loads(request.raw))
        messages = request.chat.messages
        if messages and messages[-1].content == "hold":
            await asyncio.Event().wait()
        async for envelope in ECHO.answer(request, context):
            yield envelope
