"""The engine interface: ``generate(requests, context)`` yields envelopes.

One engine object serves every connection of the daemon; ``generate`` is
called once per connection. It mirrors the Python bidirectional engines of
NVIDIA Dynamo (``async def generate(request_stream, context)``).

Duties of an engine:

- answer the requests in the order they arrive, each answer a run of
  envelopes whose chunks share one ``id``;
- stop promptly once ``context.is_stopped()``: the daemon also cancels the
  task iterating ``generate``, so ``finally`` blocks run and nothing keeps
  generating into a dead socket;
- raise to report a failure: before the first envelope of a connection the
  daemon closes with 1011 ``engine error: <message>``; later it first sends
  ``{"event": "error", "comment": ["<message>"]}``. A failure that concerns
  one request only is better answered in band with such an envelope, and the
  session goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ..config import Config
from ..protocol import Envelope, Request

__all__ = ["Context", "Engine", "EngineFactory", "aclose"]


class Context:
    """What an engine knows of the connection it serves.

    Attributes:
        session_id: a fresh id per connection, also used in chunk ids.
    """

    # Every connection holds one, mostly never awaited: a flag, and waiters
    # made on demand (an asyncio.Event would allocate its deque up front).
    __slots__ = ("_stopped", "_waiters", "session_id")

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._stopped = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_stopped(self) -> bool:
        """Whether the connection asked the engine to stop."""
        return self._stopped

    def stop_generating(self) -> None:
        """Ask the engine to stop; the daemon calls it when the connection ends."""
        self._stopped = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)
        self._waiters = None

    async def stopped(self) -> None:
        """Wait until the engine is asked to stop."""
        if self._stopped:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class Engine(Protocol):
    """Anything with a ``generate`` of this shape is an engine."""

    def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        """Answer the connection's requests, in order, as envelopes."""
        ...


EngineFactory = Callable[[Config], Engine]
"""Builds the daemon's engine from its settings; a class taking ``config`` qualifies."""


async def aclose(obj: object) -> None:
    """Await ``obj.aclose()`` if it has one: an engine's optional shutdown call,
    or the close of the async generator ``generate`` returned."""
    close = getattr(obj, "aclose", None)
    if close is not None:
        await close()
