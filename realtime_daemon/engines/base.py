"""The engine interface: ``answer(request, context)`` yields one answer's envelopes.

One engine object serves every connection of the daemon; ``answer`` is called
once per request. The daemon owns everything around it: the order and
concurrency of answers, cancellation, the numbering of envelopes, request
ids, accounting and errors on the wire.

Duties of an engine:

- yield the answer's envelopes, one at a time or several in a list (an
  engine relaying an upstream hands over all it read at once, so the
  daemon writes them in one pass); :class:`RequestContext` builds chunks
  (``context.delta(...)``, ``context.finish(...)``) with the chunk id,
  ``created``, the model and the first chunk's role filled in;
- stop when cancelled: a cancelled answer gets :class:`asyncio.CancelledError`
  at its next ``await``, so ``finally`` blocks run (close upstream
  responses there); check ``context.is_stopped()`` between chunks computed
  without awaiting;
- raise :class:`RequestFailed` when one request fails (an upstream said no):
  the client gets an error envelope with its code and the session goes on.
  Any other exception is a failure of the engine itself: the daemon logs its
  traceback and closes the connection 1011 ``engine error: <message>``.

An engine that relays an upstream from protocol callbacks may offer
``relay(request, context, delivery)`` instead: it hands each read's
envelopes to ``delivery.send(batch)`` as they arrive (no coroutine per
read), stops reading while ``send`` returns True until ``await
delivery.ready()``, and returns when the answer is complete. The duties are
the same (cancellation arrives at its ``await``; close the upstream then).

Engines written for the bidirectional interface of earlier versions (and of
NVIDIA Dynamo's Python engines), ``generate(requests, context)`` once per
connection, still work: :mod:`.stream` adapts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, Protocol

from realtime_daemon.config import Config
from realtime_daemon.engines.waiters import Waiters
from realtime_daemon.wire.chat import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    Envelope,
    ErrorDetail,
    Request,
    UpstreamDetail,
    Usage,
)

__all__ = [
    "Context",
    "Delivery",
    "Engine",
    "EngineFactory",
    "RelayEngine",
    "RequestContext",
    "RequestFailed",
    "StreamEngine",
    "aclose",
]


class Context:
    """What an engine knows of the session (the connection) a request belongs to.

    Attributes:
        session_id: a fresh id per connection, also used in chunk ids.
        state: per-session storage for engines that keep state across the
            requests of a session (keyed as the engine likes; freed with the
            session).
    """

    # Every connection holds one, mostly never awaited: a flag, and waiters
    # made on demand (an asyncio.Event would allocate its deque up front).
    __slots__ = ("_spawn", "_state", "_stopped", "_waiters", "session_id")

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._state: dict[object, Any] | None = None  # made on first use
        self._stopped = False
        self._waiters: Waiters | None = None  # made on first use
        self._spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]] | None = None

    @property
    def state(self) -> dict[object, Any]:
        """Per-session storage for engines (see the class docstring)."""
        if self._state is None:
            self._state = {}
        return self._state

    def is_stopped(self) -> bool:
        """Whether the session has ended (or is ending)."""
        return self._stopped

    def stop_generating(self) -> None:
        """Mark the session stopped; the daemon calls it when the connection ends."""
        self._stopped = True
        if self._waiters is not None:
            self._waiters.wake_all()

    async def stopped(self) -> None:
        """Wait until the session is stopped."""
        while not self._stopped:
            if self._waiters is None:
                self._waiters = Waiters()
            await self._waiters.wait()

    def start_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task owned by the session: cancelled when it ends.

        The task must handle its own exceptions: one that escapes ends the
        session as an engine failure.
        """
        if self._spawn is None:
            coro.close()
            raise RuntimeError("the session is not running")
        return self._spawn(coro)


class RequestContext:
    """One request's context: its ids, its stop signal, and chunk builders.

    Attributes:
        session: the session's :class:`Context`.
        index: the request's number in its session, 1, 2, 3, ...
        request_id: the client's id for the request, if it gave one.
        model: the request's model.
        chunk_id: ``chatcmpl-<session>-<index>``, shared by the answer's chunks.
        created: when the answer started, in Unix seconds.
        finished: set once a chunk with a ``finish_reason`` was yielded;
            engines that pass chunks through as bytes set it themselves.
    """

    __slots__ = (
        "_role_sent",
        "_stopped",
        "chunk_id",
        "created",
        "finished",
        "index",
        "model",
        "request_id",
        "session",
    )

    def __init__(
        self, session: Context, index: int, model: str, request_id: str | None = None
    ) -> None:
        self.session = session
        self.index = index
        self.model = model
        self.request_id = request_id
        self.chunk_id = f"chatcmpl-{session.session_id}-{index}"
        self.created = int(time.time())
        self.finished = False
        self._role_sent = False
        self._stopped = False

    def is_stopped(self) -> bool:
        """Whether this answer was cancelled or its session ended."""
        return self._stopped or self.session.is_stopped()

    def stop(self) -> None:
        """Mark the answer stopped; the daemon calls it before cancelling it."""
        self._stopped = True

    def chunk(
        self,
        delta: Delta,
        finish_reason: str | None = None,
        usage: Usage | None = None,
    ) -> Envelope:
        """An envelope holding one chunk of this answer.

        The first chunk built gets ``delta.role = "assistant"`` unless the
        delta names a role itself.
        """
        if not self._role_sent:
            self._role_sent = True
            if delta.role is None:
                delta = Delta(role="assistant", content=delta.content)
        if finish_reason is not None:
            self.finished = True
        choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
        data = ChatCompletionChunk(
            id=self.chunk_id,
            created=self.created,
            model=self.model,
            choices=[choice],
            usage=usage,
        )
        return Envelope(data=data)

    def delta(self, content: str) -> Envelope:
        """A chunk adding ``content`` to the answer."""
        if self._role_sent:
            delta = Delta(content=content)
        else:
            self._role_sent = True
            delta = Delta(role="assistant", content=content)
        # As chunk() builds it, without its checks: this is the per-token path.
        choice = ChunkChoice(delta=delta)
        data = ChatCompletionChunk(
            id=self.chunk_id, created=self.created, model=self.model, choices=[choice]
        )
        return Envelope(data=data)

    def finish(self, finish_reason: str = "stop", usage: Usage | None = None) -> Envelope:
        """The answer's last chunk: an empty delta with ``finish_reason``."""
        return self.chunk(Delta(), finish_reason, usage)


class RequestFailed(Exception):
    """One request failed; the client gets an error envelope and the session goes on.

    Args:
        code: a stable, machine-readable code (see the README's error table).
        message: what the client is told; no internal addresses.
        upstream: what the upstream server said, when one failed.
    """

    def __init__(self, code: str, message: str, upstream: UpstreamDetail | None = None) -> None:
        super().__init__(message)
        self.detail = ErrorDetail(code=code, message=message, upstream=upstream)


class Engine(Protocol):
    """Anything with an ``answer`` of this shape is an engine."""

    def answer(
        self, request: Request, context: RequestContext
    ) -> AsyncIterator[Envelope | list[Envelope]]:
        """One request's answer, as envelopes (or lists of them)."""
        ...


class Delivery(Protocol):
    """Where a :class:`RelayEngine` hands over one answer's envelopes."""

    def send(self, batch: list[Envelope]) -> bool:
        """Write ``batch`` and send it now (from any callback).

        Returns:
            whether to read no more until ``await ready()``: the client lags
            (or the answer was stopped, and its task is being cancelled).
        """
        ...

    def write(self, batch: Sequence[Envelope]) -> bool:
        """Write ``batch``, to be sent with what follows it in this pass of the loop
        (or by :meth:`flush`).

        Returns:
            whether to ``await ready()`` before writing more: the client lags,
            or the answer's time slice is over.
        """
        ...

    def flush(self) -> None:
        """Send what was written now: the engine waits for its upstream next."""
        ...

    async def ready(self) -> None:
        """Wait until the client caught up; raises if it is gone or too slow."""
        ...


class RelayEngine(Protocol):
    """An engine that pushes each answer's envelopes as its upstream sends them."""

    async def relay(self, request: Request, context: RequestContext, delivery: Delivery) -> None:
        """Relay one request's answer into ``delivery``; return when it is complete."""
        ...


class StreamEngine(Protocol):
    """The bidirectional interface: one ``generate`` per connection (see :mod:`.stream`)."""

    def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        """Answer the connection's requests, in order, as envelopes."""
        ...


EngineFactory = Callable[[Config], "Engine | RelayEngine | StreamEngine"]
"""Builds an engine from the daemon's settings; a class taking ``config`` qualifies."""


async def aclose(obj: object) -> None:
    """Await ``obj.aclose()`` if it has one: an engine's optional shutdown call,
    or the close of an async generator."""
    close = getattr(obj, "aclose", None)
    if close is not None:
        await close()
