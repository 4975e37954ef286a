"""Model routing: the first request's ``model`` picks a session's engine.

With ``[[models]]`` configured, the daemon's engine is a :class:`Router`. A
session stays on the model its first valid request names: a request for an
unknown model, or later for another model, is answered with an error
envelope, and the connection stays open for valid requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from ..protocol import Envelope, Request
from .base import Context, Engine, aclose

__all__ = ["Router"]


class _End:
    """The chosen engine's stream ended."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Router:
    """Routes each session to one engine by its first request's model.

    Args:
        engines: engine by model name.
    """

    def __init__(self, engines: Mapping[str, Engine]) -> None:
        self.engines = dict(engines)

    async def aclose(self) -> None:
        """Close the engines that hold resources."""
        for engine in self.engines.values():
            await aclose(engine)

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        """Pick the engine, then relay its answers and the routing errors, in order."""
        first: Request | None = None
        async for request in requests:
            if request.chat.model in self.engines:
                first = request
                break
            yield self._unknown(request.chat.model)
        if first is None:
            return
        model = first.chat.model
        # The chosen engine asks for its next request only once it has
        # answered the last; a refusal must go out right then, between two
        # answers, so the engine runs in a child task and both it and the
        # refusals feed one queue of size 1, which keeps their order.
        out: asyncio.Queue[Envelope | _End | _Failed] = asyncio.Queue(maxsize=1)

        async def accepted() -> AsyncIterator[Request]:
            yield first
            async for request in requests:
                if request.chat.model == model:
                    yield request
                else:
                    await out.put(self._refused(model, request.chat.model))

        async def pump() -> None:
            try:
                stream = self.engines[model].generate(accepted(), context)
                async for envelope in stream:
                    await out.put(envelope)
            except Exception as exc:
                await out.put(_Failed(exc))
            else:
                await out.put(_End())

        task = asyncio.create_task(pump())
        try:
            while True:
                item = await out.get()
                if isinstance(item, _End):
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            task.cancel()
            await asyncio.wait((task,))

    def _unknown(self, model: str) -> Envelope:
        available = ", ".join(sorted(self.engines))
        return Envelope(
            event="error", comment=[f"unknown model {model!r}: available models: {available}"]
        )

    def _refused(self, model: str, asked: str) -> Envelope:
        return Envelope(
            event="error",
            comment=[f"this session uses model {model!r}; a request for {asked!r} is refused"],
        )
