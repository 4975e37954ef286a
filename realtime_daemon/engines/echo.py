"""The echo engine: answers each request with its last user message, one code point a chunk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from ..config import Config
from ..protocol import (
    ChatCompletionChunk,
    ChatRequest,
    ChunkChoice,
    Delta,
    Envelope,
    Request,
    Usage,
    message_text,
)
from .base import Context

__all__ = ["EchoEngine", "echo_text"]


def echo_text(chat: ChatRequest, k: int) -> str:
    """What the echo engine answers to the k-th request of a connection.

    The text of the last message when it is a user message with text, else
    ``<chunk k: non-text content>``.
    """
    last = chat.messages[-1]
    text = message_text(last) if last.role == "user" else ""
    return text or f"<chunk {k}: non-text content>"


class EchoEngine:
    """Streams the prompt back, pausing ``echo_delay_ms`` before each code point."""

    def __init__(self, config: Config) -> None:
        self._delay = config.echo_delay_ms / 1000.0

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        """Answer each request in turn; see the README's wire contract."""
        k = 0
        async for request in requests:
            k += 1
            chat = request.chat
            chunk_id = f"chatcmpl-{context.session_id}-{k}"
            created = int(time.time())
            text = echo_text(chat, k)
            role: str | None = "assistant"
            for char in text:
                if self._delay:
                    await asyncio.sleep(self._delay)
                if context.is_stopped():
                    return
                yield _envelope(chunk_id, created, chat.model, Delta(role=role, content=char))
                role = None
            options = chat.stream_options
            usage = None
            if options is not None and options.include_usage:
                prompt = sum(len(message_text(m)) for m in chat.messages)
                usage = Usage(
                    prompt_tokens=prompt,
                    completion_tokens=len(text),
                    total_tokens=prompt + len(text),
                )
            yield _envelope(chunk_id, created, chat.model, Delta(), "stop", usage)


def _envelope(
    chunk_id: str,
    created: int,
    model: str,
    delta: Delta,
    finish_reason: str | None = None,
    usage: Usage | None = None,
) -> Envelope:
    choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
    chunk = ChatCompletionChunk(
        id=chunk_id, created=created, model=model, choices=[choice], usage=usage
    )
    return Envelope(data=chunk)
