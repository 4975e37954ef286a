"""Engines for tests: each one exposes what the daemon did to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from realtime_daemon.config import Config
from realtime_daemon.engines.base import Context
from realtime_daemon.engines.echo import EchoEngine
from realtime_daemon.protocol import Envelope, Request


class FailingEngine:
    """Echoes ``good_chunks`` chunks of the first request, then raises."""

    def __init__(self, good_chunks: int, message: str = "boom") -> None:
        self._good = good_chunks
        self._message = message
        self._echo = EchoEngine(Config(echo_delay_ms=0))

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        sent = 0
        async for envelope in self._echo.generate(requests, context):
            if sent == self._good:
                break
            sent += 1
            yield envelope
        raise RuntimeError(self._message)


class GatedEngine:
    """Echo engine that reads no request until ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.channel: AsyncIterator[Request] | None = None
        self._echo = EchoEngine(Config(echo_delay_ms=0))

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        self.channel = requests
        self.started.set()
        await self.gate.wait()
        async for envelope in self._echo.generate(requests, context):
            yield envelope


class EndlessEngine:
    """Streams chunks of one answer until stopped, and records how it ended."""

    def __init__(self) -> None:
        self.streaming = asyncio.Event()
        self.ended = asyncio.Event()
        self.stopped_when_ended: bool | None = None
        self.chunks = 0

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        echo = EchoEngine(Config(echo_delay_ms=1))
        try:
            async for request in requests:
                while not context.is_stopped():
                    one = _single(request)
                    async for envelope in echo.generate(one, context):
                        self.chunks += 1
                        self.streaming.set()
                        yield envelope
        finally:
            self.stopped_when_ended = context.is_stopped()
            self.ended.set()


async def _single(request: Request) -> AsyncIterator[Request]:
    yield request


class InBandErrorEngine:
    """Answers the first request with an error envelope only, then echoes the rest."""

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        echo = EchoEngine(Config(echo_delay_ms=0))
        first = True
        async for request in requests:
            if first:
                first = False
                yield Envelope(event="error", comment=["upstream said no"])
                continue
            async for envelope in echo.generate(_single(request), context):
                yield envelope


class BlastEngine:
    """Streams 64 KiB chunks as fast as the socket takes them, until stopped."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        echo = EchoEngine(Config(echo_delay_ms=0))
        try:
            async for request in requests:
                big = request.chat.model * 65536
                while True:
                    one = _single(request)
                    async for envelope in echo.generate(one, context):
                        yield Envelope(comment=[big], event=envelope.event)
        finally:
            self.ended.set()
