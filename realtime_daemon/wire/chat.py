"""Wire types of the ``/v1/realtime`` endpoint: requests in, envelopes out.

No I/O lives here: these are msgspec Structs plus the one decoder and the one
encoder the daemon reuses for every frame. Field names follow OpenAI's chat
completion API so that clients and engines can use its documentation as is.

Requests accept every field OpenAI or vLLM defines, and unknown ones: msgspec
ignores fields a Struct does not declare, and the frame's own bytes travel
beside the decoded request (:class:`Request.raw`) for engines that forward it.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "INVALID_UTF8",
    "CancelMessage",
    "ChatCompletionChunk",
    "ChatMessage",
    "ChatRequest",
    "ChunkChoice",
    "ContentPart",
    "Delta",
    "Envelope",
    "ErrorDetail",
    "FrameError",
    "Request",
    "SessionFields",
    "SessionUpdateMessage",
    "StreamOptions",
    "UpstreamDetail",
    "Usage",
    "decode_request",
    "encode_envelope",
    "engine_error",
    "frame_tail",
    "is_finish",
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

    ``model`` and ``messages`` are required; ``messages`` may be empty (the
    engine, or its upstream, decides what that means). The common sampling
    fields are declared so that a wrong type is refused at the edge; any other
    field is accepted and left in :attr:`Request.raw`.
    """

    model: str
    messages: list[ChatMessage]
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


class UpstreamDetail(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What an upstream server said of a failed request, as far as it said it.

    ``replica`` is the index of the ``--upstream-url`` that answered (never
    its address); ``status`` its HTTP status; ``type``, ``code`` and
    ``param`` its own error object's fields.
    """

    replica: int | None = None
    status: int | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The machine-readable part of an error envelope (see the README's error table)."""

    code: str
    message: str
    upstream: UpstreamDetail | None = None
    param: str | None = None  # the field at fault (the Realtime dialect's errors)
    event_id: str | None = None  # the client event at fault (the Realtime dialect's)
    retry_after: float | None = None  # seconds until a rate limit lets the request in


class Envelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One server frame: ``{"data": <chunk>, "id": "<n>"}``.

    Engines yield envelopes without ``id``; the session's outbox numbers them
    1, 2, 3, ... as it writes them (``realtime_daemon.dialects.FrameWriter``).
    ``data`` is a chunk, or an already encoded JSON value
    (:class:`msgspec.Raw`) that an engine passes through untouched.
    ``event`` and ``comment`` are written only when set, e.g. the error
    envelope ``{"event": "error", "comment": ["..."]}``; so are ``error``
    (the error's code and details, for sessions that use the session
    features) and ``request_id`` (the client's id of the request answered).
    """

    data: ChatCompletionChunk | msgspec.Raw | None = None
    id: str = ""
    event: str | None = None
    comment: list[str] | None = None
    error: ErrorDetail | None = None
    request_id: str | None = None


class CancelMessage(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="request.cancel"
):
    """``{"type": "request.cancel", "request_id": "..."}``: stop or drop one request."""

    request_id: str


class SessionFields(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The settings a ``session.update`` may change; those left out stay as they are."""

    model: str | msgspec.UnsetType | None = msgspec.UNSET
    max_concurrent_requests: int | msgspec.UnsetType = msgspec.UNSET
    request_defaults: dict[str, msgspec.Raw] | msgspec.UnsetType = msgspec.UNSET
    resumable: bool | msgspec.UnsetType = msgspec.UNSET


class SessionUpdateMessage(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="session.update"
):
    """``{"type": "session.update", "session": {...}}``: settings for later requests."""

    session: SessionFields


class FrameError(ValueError):
    """A client frame that is not a chat-completion request; the message says why."""


INVALID_UTF8 = "invalid UTF-8 in text frame"
"""Why a Text frame that is not UTF-8 is refused (RFC 6455 8.1: 1007)."""

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
        raise FrameError(INVALID_UTF8) from None
    except RecursionError:
        # Deeply nested arrays or objects exhaust msgspec's recursion limit.
        raise FrameError("JSON nested too deeply") from None
    return Request(chat=chat, raw=frame)


def is_finish(envelope: Envelope) -> bool:
    """Whether ``envelope`` ends an answer: an error, or a chunk with a ``finish_reason``."""
    data = envelope.data
    if data.__class__ is ChatCompletionChunk:
        # A loop, not any(): this runs per chunk, and a generator costs 3x.
        for choice in data.choices:  # noqa: SIM110
            if choice.finish_reason is not None:
                return True
        return False
    return envelope.event == "error"


def engine_error(envelope: Envelope) -> ErrorDetail:
    """An engine's own error envelope (``{"event": "error", "comment": [...]}``) as
    the error it reports: ``request_failed``, with its first comment."""
    return ErrorDetail(code="request_failed", message=(envelope.comment or ["request failed"])[0])


def frame_tail(body: bytes) -> bytes:
    """What follows a frame's id when the rest of its JSON object is ``body`` (an
    encoded object): ``"}`` when empty, else ``",`` and its members."""
    return b'"}' if body == b"{}" else b'",' + body[1:]


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
    return "".join(part.text for part in content if part.type == "text" and part.text is not None)
