"""The chat dialect: chat-completion requests in, ``{"data": <chunk>, "id": "<n>"}`` out.

A frame is a chat-completion request, or a control message when its JSON
object has a top-level string ``type`` (``request.cancel``,
``session.update``). The session features are opt-in: a client that sends no
control message and no ``request_id`` gets the bytes of the first slice.
Once it uses one, its error envelopes also carry ``error``, the code and
details a program can branch on.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import msgspec

from realtime_daemon.dialects import (
    RESUME_UNAVAILABLE,
    FrameWriter,
    Passthrough,
    Resumable,
    resume_state,
)
from realtime_daemon.wire.chat import (
    CancelMessage,
    Envelope,
    ErrorDetail,
    FrameError,
    SessionUpdateMessage,
    decode_request,
    engine_error,
    frame_tail,
)
from realtime_daemon.wire.events import Cancel, Event, Refuse, Reply, Submit
from realtime_daemon.wire.grants import Grant, refusal

__all__ = ["REQUEST_ID", "ChatDialect", "envelope_frame"]

REQUEST_ID = re.compile(r"[\x20-\x7e]{1,64}")
"""A request id: 1 to 64 printable ASCII characters."""

# Fields a session's request_defaults may not set: they are not defaults.
_NOT_DEFAULTS = ("model", "messages", "request_id")


_ABSENT = msgspec.Raw(b"")


class _Head(msgspec.Struct):
    """What tells a control message from a request, and a request's id (as JSON; empty when
    the field is not there)."""

    type: msgspec.Raw = _ABSENT
    request_id: msgspec.Raw = _ABSENT
    model: msgspec.Raw = _ABSENT


_head_decoder = msgspec.json.Decoder(_Head)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_cancel_decoder = msgspec.json.Decoder(CancelMessage)
_update_decoder = msgspec.json.Decoder(SessionUpdateMessage)
_encoder = msgspec.json.Encoder()
_PLACEHOLDER = {"model": msgspec.Raw(b'"m"'), "messages": msgspec.Raw(b'[{"role":"user"}]')}


def _error(code: str, message: str) -> ErrorDetail:
    return ErrorDetail(code=code, message=message)


class ChatDialect:
    """One connection's chat dialect: its session settings, its request ids.

    Args:
        writer: where envelopes go (numbered there).
        session_id: the connection's session id (shown in ``session.updated``).
        models: the models a session may choose; None when any is taken.
        concurrency_limit: the most answers a session may ask to run at once.
        resume: the session's resume switch; None when resume is off.
        grant: the client's key, whose models a ``session.update`` may name.
    """

    __slots__ = (
        "_active",
        "_concurrency_limit",
        "_defaults",
        "_grant",
        "_models",
        "_resume",
        "_session_id",
        "_writer",
        "detailed",
        "draining",
        "max_concurrent",
        "model",
        "resumable",
    )

    def __init__(
        self,
        writer: FrameWriter,
        session_id: str,
        models: Collection[str] | None = None,
        concurrency_limit: int = 1,
        resume: Resumable | None = None,
        grant: Grant | None = None,
    ) -> None:
        self._writer = writer
        self._grant = grant
        self._resume = resume
        self.resumable = False
        self._session_id = session_id
        self._models = models
        self._concurrency_limit = concurrency_limit
        self._active: set[str] | None = None  # request ids queued or running
        self._defaults: dict[str, msgspec.Raw] = {}
        self.model: str | None = None
        self.max_concurrent = 1
        self.detailed = False  # error envelopes carry `error`
        self.draining = False

    name = "chat"

    # -- client to server -------------------------------------------------------

    def receive(self, frame: bytes) -> Event:
        """Decode one client frame into an event.

        Raises:
            FrameError: not a JSON object, or a request that is not a
                chat-completion request (the connection closes 1007).
        """
        try:
            head = _head_decoder.decode(frame)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return Submit(decode_request(frame))  # raises the FrameError that says why
        if bytes(head.type).startswith(b'"'):
            self.detailed = True
            return self._control(frame, msgspec.json.decode(head.type))
        if self.draining:
            return self._refuse_draining(head)
        if not head.request_id and self.max_concurrent > 1:
            return self._refuse(
                "request_id_required",
                "this session answers requests concurrently: each request needs a request_id",
            )
        if not head.request_id and not self._defaults and (head.model or self.model is None):
            return Submit(decode_request(frame))
        return self._request(frame, head)

    def _request(self, frame: bytes, head: _Head) -> Event:
        """A request with an id, session defaults, or the session's model to fill in."""
        request_id: str | None = None
        if head.request_id:
            self.detailed = True
            value = msgspec.json.decode(head.request_id)
            if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
                return self._refuse(
                    "invalid_request_id",
                    "request_id must be a string of 1 to 64 printable ASCII characters",
                )
            request_id = value
            if self._active is not None and request_id in self._active:
                return self._refuse(
                    "duplicate_request_id",
                    f"request_id {request_id!r} is already queued or running",
                    request_id,
                )
        fields = _fields_decoder.decode(frame)
        fields.pop("request_id", None)
        for name, value in self._defaults.items():
            fields.setdefault(name, value)
        if "model" not in fields and self.model is not None:
            fields["model"] = msgspec.Raw(_encoder.encode(self.model))
        raw = _encoder.encode(fields)
        request = decode_request(raw)
        if request_id is not None:
            if self._active is None:
                self._active = set()
            self._active.add(request_id)
        return Submit(request, request_id)

    def _refuse_draining(self, head: _Head) -> Refuse:
        """A request that arrived after the drain began: refused at once, ahead of the queue."""
        request_id = None
        if head.request_id:
            value = msgspec.json.decode(head.request_id)
            request_id = value if isinstance(value, str) else None
        detail = _error("shutting_down", "server shutting down: request not taken")
        return Refuse(detail, request_id)

    def _refuse(self, code: str, message: str, request_id: str | None = None) -> Refuse:
        return Refuse(_error(code, message), request_id, in_order=True)

    def _control(self, frame: bytes, kind: str) -> Event:
        if kind == "request.cancel":
            try:
                return Cancel(_cancel_decoder.decode(frame).request_id)
            except msgspec.DecodeError as exc:
                return Refuse(_error("invalid_request_id", f"request.cancel: {exc}"))
        if kind == "session.update":
            try:
                update = _update_decoder.decode(frame)
            except msgspec.DecodeError as exc:
                return Refuse(_error("invalid_session_update", str(exc)))
            return self._update(update)
        return Refuse(
            _error(
                "unknown_message_type",
                f"unknown message type {kind!r}: expected request.cancel or session.update",
            )
        )

    def _update(self, update: SessionUpdateMessage) -> Event:
        """Check every field first; apply them all, or none."""
        fields = update.session
        model = self.model if fields.model is msgspec.UNSET else fields.model
        if model is not None and self._models is not None and model not in self._models:
            available = ", ".join(self._models)
            return Refuse(
                _error("model_not_found", f"unknown model {model!r}: available models: {available}")
            )
        if model is not None and (refused := refusal(self._grant, model)) is not None:
            return Refuse(refused)
        concurrent = self.max_concurrent
        if fields.max_concurrent_requests is not msgspec.UNSET:
            concurrent = fields.max_concurrent_requests
            if not 1 <= concurrent <= self._concurrency_limit:
                return Refuse(
                    _error(
                        "invalid_session_update",
                        f"max_concurrent_requests must be from 1 to {self._concurrency_limit}"
                        " - at `$.session.max_concurrent_requests`",
                    )
                )
        defaults = self._defaults
        if fields.request_defaults is not msgspec.UNSET:
            defaults = fields.request_defaults
            problem = _check_defaults(defaults)
            if problem is not None:
                return Refuse(_error("invalid_session_update", problem))
        resumable = self.resumable
        if fields.resumable is not msgspec.UNSET:
            resumable = fields.resumable
            if resumable and self._resume is None:
                return Refuse(_error("resume_unavailable", RESUME_UNAVAILABLE))
        self.model, self.max_concurrent, self._defaults = model, concurrent, defaults
        self.resumable = resumable
        return Reply(self.updated)

    def refused(self, detail: ErrorDetail) -> Refuse:
        """An error envelope, ahead of the answers queued."""
        return Refuse(detail)

    def binary(self) -> None:
        """Binary frames are not part of this wire: the connection closes 1003."""
        return None

    def drain(self) -> None:
        """Refuse requests from now on (``shutting_down``); nothing is sent unasked."""
        self.draining = True

    def expired(self) -> None:
        """Nothing: chat frames have no such event (the close's reason says it)."""

    def release(self, request_id: str) -> None:
        """``request_id`` is answered (or dropped): it may be used again."""
        if self._active is not None:
            self._active.discard(request_id)

    # -- server to client -------------------------------------------------------

    def opened(self) -> None:
        """Nothing: a chat client speaks first."""

    def started(self, request_id: str | None) -> _Answer:
        """An answer's envelopes go out as the engine made them, numbered, with its id."""
        return _Answer(self, request_id)

    def send(self, envelope: Envelope) -> None:
        """Write ``envelope``, numbered: the bytes the encoder writes for it with its
        ``id``, built around the id (see :func:`envelope_frame`)."""
        self._writer.write(*envelope_frame(envelope))

    def error(self, detail: ErrorDetail, request_id: str | None = None) -> None:
        """Send ``{"event": "error", "comment": [message]}``, with ``error`` once detailed."""
        self.send(
            Envelope(
                event="error",
                comment=[detail.message],
                error=detail if self.detailed or request_id is not None else None,
                request_id=request_id,
            )
        )

    def cancelled(self, request_id: str) -> None:
        """Send ``{"event": "cancelled", "request_id": ...}``, the end of a cancelled answer."""
        self.send(Envelope(event="cancelled", request_id=request_id))

    def updated(self) -> None:
        """Send ``{"event": "session.updated", "data": <the effective session>}``."""
        session: dict[str, Any] = {
            "session_id": self._session_id,
            "model": self.model,
            "max_concurrent_requests": self.max_concurrent,
            "request_defaults": self._defaults,
        }
        resume_state(session, self._resume, self.resumable)
        self.send(Envelope(event="session.updated", data=msgspec.Raw(_encoder.encode(session))))


class _Answer(Passthrough):
    """One answer's output: each envelope written as the engine made it, with the
    answer's request id."""

    __slots__ = ("_dialect", "_request_id", "_tail", "_writer")

    def __init__(self, dialect: ChatDialect, request_id: str | None) -> None:
        self._dialect = dialect
        self._writer = dialect._writer
        self._request_id = request_id
        # Every chunk of the answer ends the same way.
        self._tail = (
            b'"}' if request_id is None else b'","request_id":%b}' % _encoder.encode(request_id)
        )

    def envelope(self, envelope: Envelope) -> None:
        """Write one envelope of the answer."""
        if (
            envelope.event is None
            and envelope.comment is None
            and envelope.error is None
            and envelope.request_id is None
        ):
            # A chunk (the per-chunk path): relayed bytes, or a typed chunk,
            # in the envelope's bytes as the encoder writes them.
            data = envelope.data
            if data.__class__ is msgspec.Raw:
                assert isinstance(data, msgspec.Raw)
                self._writer.write(b'{"data":%b,"id":"' % data, self._tail)
                return
            if data is not None:
                self._writer.write(b'{"data":%b,"id":"' % _encoder.encode(data), self._tail)
                return
        if envelope.event is not None and envelope.error is None and self._dialect.detailed:
            # An engine's own error envelope: give it a code too.
            envelope = msgspec.structs.replace(envelope, error=engine_error(envelope))
        self._dialect.send(msgspec.structs.replace(envelope, request_id=self._request_id))


def envelope_frame(envelope: Envelope) -> tuple[bytes, bytes]:
    """The bytes before and after the id of ``envelope`` as the encoder writes it with
    one: ``head + id + tail == encode(replace(envelope, id=id))``."""
    rest = _encoder.encode(msgspec.structs.replace(envelope, data=None, id=""))
    data = envelope.data
    head = b'{"id":"' if data is None else b'{"data":%b,"id":"' % _encoder.encode(data)
    return head, frame_tail(rest)


def _check_defaults(defaults: dict[str, msgspec.Raw]) -> str | None:
    """Why ``defaults`` cannot be merged under requests, or None."""
    for name in _NOT_DEFAULTS:
        if name in defaults:
            return f"request_defaults may not set {name!r} - at `$.session.request_defaults`"
    try:
        decode_request(_encoder.encode({**defaults, **_PLACEHOLDER}))
    except FrameError as exc:
        return str(exc).replace("`$.", "`$.session.request_defaults.")
    return None
