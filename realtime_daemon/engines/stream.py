"""Serve a bidirectional engine, ``generate(requests, context)``, one request at a time.

Such an engine (the interface of earlier versions, and of NVIDIA Dynamo's
Python engines) is called once per session and keeps whatever state it likes
in its generator. The adapter runs that generator in a task owned by the
session and feeds it the session's requests one by one; a request's answer
is what the engine yields until it asks for the next request.

- Answers of one session are served one after the other, whatever the
  session's ``max_concurrent_requests``.
- Cancelling an answer (``request.cancel``) ends the engine's generator: the
  next request starts a fresh ``generate``, without the state of the old one.
- When ``generate`` returns, the session ends: the connection closes 1000
  ``stream complete``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from realtime_daemon.engines.base import Context, RequestContext, StreamEngine, aclose
from realtime_daemon.wire.chat import Envelope, Request

__all__ = ["StreamAdapter", "StreamEnded"]


class StreamEnded(Exception):
    """The engine's ``generate`` returned: it ends the session."""


class _Asked:
    """The engine asked for its next request: the answer it was giving is complete."""


class _Ended:
    """``generate`` returned."""


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_ASKED = _Asked()
_ENDED = _Ended()
_Item = Envelope | _Asked | _Ended | _Failed


class StreamAdapter:
    """A per-request engine around a bidirectional one.

    Args:
        engine: the engine with ``generate(requests, context)``.
    """

    def __init__(self, engine: StreamEngine) -> None:
        self.engine = engine

    async def aclose(self) -> None:
        """The wrapped engine's own ``aclose``, if it has one."""
        await aclose(self.engine)

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        """Hand ``request`` to the session's ``generate`` and relay its answer."""
        session = context.session
        pump: _Pump | None = session.state.get(self)
        if pump is None or pump.broken:
            pump = session.state[self] = _Pump(self.engine, session)
        async for envelope in pump.answer(request):
            yield envelope


class _Pump:
    """One session's ``generate``, run in a task, fed one request at a time."""

    def __init__(self, engine: StreamEngine, session: Context) -> None:
        self.broken = False
        self._requests: asyncio.Queue[Request] = asyncio.Queue(maxsize=1)
        self._out: asyncio.Queue[_Item] = asyncio.Queue(maxsize=1)
        self._answering = False
        self._turn = asyncio.Lock()
        self._task = session.start_task(self._run(engine, session))

    async def answer(self, request: Request) -> AsyncIterator[Envelope]:
        async with self._turn:
            complete = False
            try:
                await self._requests.put(request)
                while True:
                    item = await self._out.get()
                    if isinstance(item, Envelope):
                        yield item
                    elif item is _ASKED:
                        complete = True
                        return
                    elif isinstance(item, _Failed):
                        self.broken = complete = True
                        raise item.error
                    else:
                        self.broken = complete = True
                        raise StreamEnded
            finally:
                if not complete:
                    # Cut mid-answer: the generator cannot be told which
                    # request to drop, so it goes, and the next request
                    # starts a fresh one.
                    self.broken = True
                    self._task.cancel()

    async def _feed(self) -> AsyncIterator[Request]:
        while True:
            if self._answering:
                self._answering = False
                await self._out.put(_ASKED)
            request = await self._requests.get()
            self._answering = True
            yield request

    async def _run(self, engine: StreamEngine, session: Context) -> None:
        stream = engine.generate(self._feed(), session)
        try:
            async for envelope in stream:
                await self._out.put(envelope)
        except Exception as exc:
            await self._out.put(_Failed(exc))
            return
        finally:
            await aclose(stream)
        await self._out.put(_ENDED)
