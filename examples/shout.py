"""An example engine: answers each request with its prompt in capitals, a word a chunk.

Run it with: realtime-daemon serve --engine shout:Shout (from this folder).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from realtime_daemon.engines.api import Config, Envelope, Request, RequestContext, message_text


class Shout:
    """Shouts the last message back, one word per chunk."""

    def __init__(self, config: Config) -> None:
        self.config = config  # the daemon's settings, read once at startup

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        chat = request.chat  # typed; request.raw holds the frame's bytes
        last = message_text(chat.messages[-1]) if chat.messages else ""
        words = last.upper().split()
        for n, word in enumerate(words):
            if context.is_stopped():  # cancelled, or the client went away
                return
            # The first chunk gets role "assistant"; id, created and model are filled in.
            yield context.delta(word if n == 0 else " " + word)
        yield context.finish("stop")
