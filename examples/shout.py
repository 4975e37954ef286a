"""An example engine: answers each request with its prompt in capitals, a word a chunk.

Run it with: realtime-daemon serve --engine shout:Shout (from this folder).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from realtime_daemon.config import Config
from realtime_daemon.engines.base import Context
from realtime_daemon.protocol import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    Envelope,
    Request,
    message_text,
)


class Shout:
    """Shouts the last message back, one word per chunk."""

    def __init__(self, config: Config) -> None:
        self.config = config  # the daemon's settings, read once at startup

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        k = 0
        async for request in requests:  # one at a time, in arrival order
            k += 1
            chat = request.chat  # typed; request.raw holds the frame's bytes
            chunk_id = f"chatcmpl-{context.session_id}-{k}"
            words = message_text(chat.messages[-1]).upper().split()
            deltas = [Delta(role="assistant", content=" ".join(words[:1]))]
            deltas += [Delta(content=" " + word) for word in words[1:]]
            for delta in deltas:
                if context.is_stopped():  # the client went away
                    return
                yield chunk(chunk_id, chat.model, delta)
            yield chunk(chunk_id, chat.model, Delta(), finish_reason="stop")


def chunk(chunk_id: str, model: str, delta: Delta, finish_reason: str | None = None) -> Envelope:
    """One envelope; the daemon numbers it."""
    choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
    data = ChatCompletionChunk(id=chunk_id, created=int(time.time()), model=model, choices=[choice])
    return Envelope(data=data)
