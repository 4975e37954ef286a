"""The echo engine: answers each request with its last user message, one code point a chunk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from realtime_daemon.config import Config
from realtime_daemon.config.engine_settings import EchoDelayMs
from realtime_daemon.engines.base import RequestContext
from realtime_daemon.engines.options import read_options
from realtime_daemon.wire.chat import ChatRequest, Envelope, Request, Usage, message_text

__all__ = ["EchoEngine", "EchoOptions", "echo_text"]


def echo_text(chat: ChatRequest, k: int) -> str:
    """What the echo engine answers to the k-th request of a connection.

    The text of the last message when it is a user message with text, else
    (also for no messages at all) ``<chunk k: non-text content>``.
    """
    last = chat.messages[-1] if chat.messages else None
    text = message_text(last) if last is not None and last.role == "user" else ""
    return text or f"<chunk {k}: non-text content>"


class EchoOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The echo engine's options (also ``--echo-delay-ms``, as in earlier versions)."""

    echo_delay_ms: EchoDelayMs = 10.0


class EchoEngine:
    """Streams the prompt back, pausing ``echo_delay_ms`` before each code point.

    Args:
        config: the daemon's settings.
        options: its options; left out, read from ``config`` as the loader reads them.
    """

    Options = EchoOptions

    def __init__(self, config: Config, options: EchoOptions | None = None) -> None:
        self.options = options if options is not None else read_options(EchoOptions, config)
        self._delay = self.options.echo_delay_ms / 1000.0

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        """Echo one request; see the README's wire contract."""
        chat = request.chat
        text = echo_text(chat, context.index)
        for char in text:
            if self._delay:
                await asyncio.sleep(self._delay)
            # No is_stopped() check: a cancel reaches the answer at its next
            # await (the daemon's own, between chunks) as CancelledError.
            yield context.delta(char)
        usage = None
        options = chat.stream_options
        if options is not None and options.include_usage:
            prompt = sum(len(message_text(m)) for m in chat.messages)
            usage = Usage(
                prompt_tokens=prompt, completion_tokens=len(text), total_tokens=prompt + len(text)
            )
        yield context.finish("stop", usage)
