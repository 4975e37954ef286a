"""Chat-completion chunks read once: an engine's envelopes become neutral answer events.

Engines answer in the chat wire's terms (:class:`~.chat.Envelope` holding a
typed :class:`~.chat.ChatCompletionChunk`, or an upstream's chunk as
:class:`msgspec.Raw` bytes). :func:`read_envelope` is the one place those are
read: it calls an :class:`AnswerEvents` target once per thing the answer
says (a text delta, a tool-call delta, the finish reason, the usage, a
failure), so a dialect other than chat frames never looks inside a chunk.

The probes here are the one schema of a chunk the daemon reads: the openai
engine checks each upstream chunk with :data:`probe_decoder` (an ``error``
object, the finish), the reader takes the rest with :data:`chunk_decoder`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import msgspec

from realtime_daemon.wire.chat import (
    ChatCompletionChunk,
    Envelope,
    ErrorDetail,
    Usage,
    engine_error,
)

__all__ = [
    "AnswerEvents",
    "ChunkProbe",
    "ErrorProbe",
    "ToolCallDelta",
    "chunk_decoder",
    "probe_decoder",
    "read_envelope",
    "usage_of",
]


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: the first piece of a call has its ``id`` and
    ``name``; later pieces add to its ``arguments``. ``index`` tells calls apart."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


class AnswerEvents(Protocol):
    """What an answer says, as :func:`read_envelope` reads it (a dialect's output
    for one answer)."""

    def text(self, text: str) -> None:
        """The answer's text goes on with ``text``."""

    def tool_call(self, call: ToolCallDelta) -> None:
        """A tool call starts or goes on."""

    def finish(self, reason: str) -> None:
        """The engine finished the answer (``stop``, ``length``, ``tool_calls``, ...)."""

    def usage(self, usage: Usage) -> None:
        """The engine's token counts for the answer."""

    def fail(self, detail: ErrorDetail) -> None:
        """The engine failed the answer in band (its error envelope)."""


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ErrorProbe(msgspec.Struct):
    """An upstream's error object; servers differ in what they put in it."""

    message: str | None = None
    type: Any = None
    code: Any = None
    param: Any = None


class _ChoiceProbe(msgspec.Struct):
    finish_reason: str | None = None


class ChunkProbe(msgspec.Struct):
    """What a relaying engine checks of each chunk: an ``error`` object, the finish."""

    error: ErrorProbe | str | None = None
    choices: list[_ChoiceProbe] = []

    @property
    def message(self) -> str | None:
        """The error's message (an error may be a bare string or an object)."""
        if isinstance(self.error, str):
            return self.error
        return self.error.message if self.error is not None else None

    @property
    def finished(self) -> bool:
        """Whether a choice of the chunk has a ``finish_reason``."""
        # A loop, not any(): this runs per chunk.
        for choice in self.choices:  # noqa: SIM110
            if choice.finish_reason is not None:
                return True
        return False


class _Chunk(msgspec.Struct):
    """What the reader takes of a chunk passed through as bytes."""

    choices: list[_Choice] = []
    usage: _Usage | None = None


probe_decoder = msgspec.json.Decoder(ChunkProbe)
"""Decodes the check of a relayed chunk (:class:`ChunkProbe`)."""

chunk_decoder = msgspec.json.Decoder(_Chunk)
"""Decodes what an answer's events need of a relayed chunk."""


def read_envelope(envelope: Envelope, target: AnswerEvents) -> bool:
    """Tell ``target`` what one envelope of an answer says; whether it ends the answer
    (an error, or a chunk with a ``finish_reason``, as :func:`~.chat.is_finish`).

    Only choice 0 is told (one output per answer: ``n > 1`` has no other
    dialect's shape). A relayed chunk that is not a chunk says nothing (the
    engine checked that it is JSON).
    """
    data = envelope.data
    if envelope.event == "error":
        target.fail(engine_error(envelope))
        return True
    if data.__class__ is ChatCompletionChunk:
        assert isinstance(data, ChatCompletionChunk)
        ended = False
        for typed in data.choices:
            # The per-token path: a typed delta has text only.
            if typed.index == 0:
                if typed.delta.content:
                    target.text(typed.delta.content)
                if typed.finish_reason is not None:
                    target.finish(typed.finish_reason)
            ended |= typed.finish_reason is not None
        if data.usage is not None:
            target.usage(data.usage)
        return ended
    if isinstance(data, msgspec.Raw):
        try:
            chunk = chunk_decoder.decode(data)
        except msgspec.DecodeError:
            return False
        return _read_chunk(chunk, target)
    return False


def _read_chunk(chunk: _Chunk, target: AnswerEvents) -> bool:
    ended = False
    for choice in chunk.choices:
        delta = choice.delta
        if choice.index == 0:
            if delta is not None and delta.content:
                target.text(delta.content)
            for call in (delta.tool_calls if delta is not None else None) or ():
                function = call.function or _Function()
                target.tool_call(
                    ToolCallDelta(call.index, call.id, function.name, function.arguments)
                )
            if choice.finish_reason is not None:
                target.finish(choice.finish_reason)
        ended |= choice.finish_reason is not None
    usage = chunk.usage
    if usage is not None:
        target.usage(
            Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            )
        )
    return ended


class _UsageOnly(msgspec.Struct):
    usage: _Usage | None = None


_usage_decoder = msgspec.json.Decoder(_UsageOnly)


def usage_of(envelope: Envelope) -> Usage | None:
    """The token counts an envelope reports, if any (a key's usage: read for
    every dialect, chat frames' passthrough too).

    A relayed chunk is decoded only when it has a ``usage`` object: OpenAI's
    stream sends ``"usage":null`` on every chunk but the last.
    """
    data = envelope.data
    if data.__class__ is ChatCompletionChunk:
        assert isinstance(data, ChatCompletionChunk)
        return data.usage
    if isinstance(data, msgspec.Raw):
        raw = bytes(data)
        at = raw.rfind(b'"usage"')
        if at < 0 or raw[at + 7 :].lstrip(b" :").startswith(b"null"):
            return None
        try:
            usage = _usage_decoder.decode(raw).usage
        except msgspec.DecodeError:
            return None
        if usage is None:
            return None
        return Usage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )
    return None
