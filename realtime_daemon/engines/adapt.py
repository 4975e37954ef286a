"""Engines of every call shape as one: ``relay(request, context, delivery)``.

The loader wraps an engine with ``answer`` (and, through
:class:`~.stream.StreamAdapter`, one with ``generate``) in an
:class:`AnswerRelay`, so the session calls every engine the same way.
"""

from __future__ import annotations

from realtime_daemon.engines.base import Delivery, Engine, RequestContext, aclose
from realtime_daemon.wire.chat import Request

__all__ = ["AnswerRelay"]


class AnswerRelay:
    """A relaying engine around one whose ``answer`` yields envelopes.

    Args:
        engine: the engine with ``answer(request, context)``.
    """

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def relay(self, request: Request, context: RequestContext, delivery: Delivery) -> None:
        """Write the answer's envelopes as the engine yields them.

        An engine may yield several envelopes at once (all it read from its
        upstream in one go): they are written in one pass and sent at once,
        since the engine waits for its upstream next. A single envelope is
        sent with whatever else this pass of the loop writes.
        """
        stream = self.engine.answer(request, context)
        try:
            async for item in stream:
                batch = item if isinstance(item, list) else (item,)
                if delivery.write(batch):
                    await delivery.ready()
                elif batch is item:
                    delivery.flush()
        finally:
            await aclose(stream)

    async def aclose(self) -> None:
        """The wrapped engine's own ``aclose``, if it has one."""
        await aclose(self.engine)
