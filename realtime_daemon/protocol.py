"""Wire types of the ``/v1/realtime`` endpoint: requests in, envelopes out.

No I/O lives here: these are msgspec Structs plus the one decoder and the one
encoder the daemon reuses for every frame. Field names follow OpenAI's chat
completion API so that clients and engines can use its documentation as is.

Requests accept every field OpenAI or vLLM defines, and unknown ones: msgspec
ignores fields a Struct does not declare, and the frame's own bytes travel
beside the decoded request (:class:`Request.raw`) for engines that forward it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = [
    "ChatCompletionChunk",
    "ChatMessage",
    "ChatRequest",
    "ChunkChoice",
    "ContentPart",
    "Delta",
    "Envelope",
    "FrameError",
    "Request",
    "StreamOptions",
    "Usage",
    "decode_request",
    "encode_envelope",
    "message_text",
]


class ContentPart(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a list-valued message content (``text``, ``image_url``, ...)."""

    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One role-tagged message of a chat-completion request."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's ``stream_options`` object."""

    include_usage: bool = False


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An OpenAI chat-completion request, as one client frame carries it.

    ``model`` and a non-empty ``messages`` are required. The common sampling
    fields are declared so that a wrong type is refused at the edge; any other
    field is accepted and left in :attr:`Request.raw`.
    """

    model: str
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded client frame: the typed request and the bytes it came from.

    Attributes:
        chat: the decoded request.
        raw: the frame's UTF-8 JSON exactly as received, for engines that
            forward fields the daemon does not declare.
    """

    chat: ChatRequest
    raw: bytes


class Delta(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one chunk adds to the answer."""

    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The single choice of a streamed chunk; ``finish_reason`` is always sent."""

    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts, sent on the final chunk when the client asks for them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionChunk(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag_field="object",
    tag="chat.completion.chunk",
):
    """OpenAI's ``chat.completion.chunk``; the tag writes ``object`` on every one."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class Envelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One server frame: ``{"data": <chunk>, "id": "<n>"}``.

    Engines yield envelopes without ``id``; the connection numbers them 1, 2,
    3, ... as it sends them. ``data`` is a chunk, or an already encoded JSON
    value (:class:`msgspec.Raw`) that an engine passes through untouched.
    ``event`` and ``comment`` are written only when set, e.g. the error
    envelope ``{"event": "error", "comment": ["..."]}``.
    """

    data: ChatCompletionChunk | msgspec.Raw | None = None
    id: str = ""
    event: str | None = None
    comment: list[str] | None = None


class FrameError(ValueError):
    """A client frame that is not a chat-completion request; the message says why."""


_request_decoder = msgspec.json.Decoder(ChatRequest)
_encoder = msgspec.json.Encoder()


def decode_request(frame: bytes) -> Request:
    """Decode one client Text frame.

    Args:
        frame: the frame's payload bytes.

    Raises:
        FrameError: the bytes are not UTF-8 JSON, or not a chat-completion
            request; the message names what was wrong and where.
    """
    try:
        chat = _request_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        raise FrameError(str(exc)) from None
    except UnicodeDecodeError:
        # msgspec validates UTF-8 inside strings but reports it this way.
        raise FrameError("invalid UTF-8 in text frame") from None
    except RecursionError:
        # Deeply nested arrays or objects exhaust msgspec's recursion limit.
        raise FrameError("JSON nested too deeply") from None
    return Request(chat=chat, raw=frame)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode one envelope as the UTF-8 JSON payload of a Text frame."""
    return _encoder.encode(envelope)


def message_text(message: ChatMessage) -> str:
    """The text of a message: its string content, or its text parts joined."""
    content = message.content
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    return "".join(
        part.text for part in content if part.type == "text" and part.text is not None
    )
