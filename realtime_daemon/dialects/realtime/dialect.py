"""The OpenAI Realtime dialect: Realtime client events in, Realtime server events out.

The session's conversation lives here. ``response.create`` turns it (or the
response's own ``input``) into one chat-completion request, which any engine
answers; its chunks become the response's events (:mod:`.response`; spoken,
:mod:`.speaking`). Audio in is :mod:`.voice`, its events :mod:`.voice_events`.
Every other client event is answered by the dialect itself, through a
:class:`~realtime_daemon.wire.events.Reply` written in its turn; events are
dispatched by a ``{type: handler}`` table. A refused event gets an ``error``
event and the session goes on, as OpenAI's does (malformed JSON and Binary
frames too, which close the chat dialect's connection).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import msgspec

from realtime_daemon.dialects import RESUME_UNAVAILABLE, FrameWriter, Resumable, resume_state
from realtime_daemon.dialects.realtime.audio_input import BETA_FIELDS
from realtime_daemon.dialects.realtime.conversation import Conversation
from realtime_daemon.dialects.realtime.hearing import Hearing
from realtime_daemon.dialects.realtime.items import ItemEvents
from realtime_daemon.dialects.realtime.request import ResponseCreate
from realtime_daemon.dialects.realtime.response import Response, Writer
from realtime_daemon.dialects.realtime.speaking import Voice
from realtime_daemon.dialects.realtime.voice import Ears
from realtime_daemon.dialects.realtime.voice_events import (
    ABSENT,
    NO_RESPONSES,
    VoiceEvents,
    unknown_event,
)
from realtime_daemon.dialects.realtime.wire import (
    Invalid,
    Names,
    Settings,
    check_settings,
    required,
    session_expired,
    unsupported,
)
from realtime_daemon.wire.chat import ErrorDetail
from realtime_daemon.wire.events import Cancel, Event, Events, Reply, Submit
from realtime_daemon.wire.grants import Grant, refusal

__all__ = ["RealtimeDialect"]

_decoder = msgspec.json.Decoder(dict[str, Any])

_SERVER_ERRORS = frozenset({"shutting_down", "engine_error", "request_failed"})


class RealtimeDialect(VoiceEvents, ItemEvents):
    """One connection's Realtime session: its settings, conversation and responses.

    Args:
        outbox: where events go.
        session_id: the connection's id (``sess_<id>``, ``conv_<id>``).
        names: the GA or the beta shape.
        model: the model the client connected for (``?model=``), if any.
        models: the models a session may choose; None when any is taken.
        concurrency_limit: responses running at once (one in band, the rest
            out of band).
        max_items: items the conversation keeps at most.
        max_bytes: bytes of items the conversation keeps at most.
        resume: the session's resume switch; None when resume is off.
        hearing: the transcriber and the input audio bound; None: audio is refused.
        voice: the synthesizer and its voices; None: answers are text only.
        transcription: a transcription session (``?intent=transcription``): turn
            detection and transcripts, no responses.
        grant: the client's key (models allowed, rate limits); None without keys.
        session: the configuration the session starts with (a client secret's).
    """

    name = "openai-realtime"
    expired = session_expired  # --max-session-duration reached

    def __init__(
        self,
        outbox: FrameWriter,
        session_id: str,
        *,
        names: Names,
        model: str | None,
        models: Collection[str] | None,
        concurrency_limit: int,
        max_items: int,
        max_bytes: int,
        resume: Resumable | None = None,
        hearing: Hearing | None = None,
        transcription: bool = False,
        voice: Voice | None = None,
        grant: Grant | None = None,
        session: Mapping[str, Any] | None = None,
    ) -> None:
        self._grant = grant
        self._resume = resume
        self._resumable = False
        self._writer = Writer(outbox)
        self._emit = self._writer.event
        self._session_id = session_id
        self._names = names
        self._models = models
        self._voice = voice
        self._voiced: str | None = None  # the voice of the first audio output, then fixed
        self._said: dict[str, list[tuple[str, int]]] = {}
        self._settings = Settings(spoken=voice is not None)  # as OpenAI: audio by default
        self._conversation = Conversation(max_items, max_bytes)
        self._responses: dict[str, Response] = {}
        self._in_band: str | None = None  # the response writing to the conversation
        self._notices: dict[str, ErrorDetail] = {}  # what a response asked and cannot get
        known = model is None or self._known(model)
        self.model: str | None = model if known else None
        self._unknown_model: str | None = None if known else model
        self.max_concurrent = concurrency_limit
        self.draining = False
        self._transcription = transcription and hearing is not None
        self._deaf = transcription and hearing is None  # asked to transcribe, cannot
        self._made_response = False
        self._waiting: tuple[ResponseCreate, str, str | None] | None = None  # for transcripts
        self._cancel_reasons: dict[str, str] = {}
        self._response_ended: float | None = None  # monotonic: the idle timeout counts from it
        events = (names.item_added, names.item_done)
        self._ears = None if hearing is None else Ears(hearing, self._conversation, self, events)
        self._start_notice: ErrorDetail | None = None
        if session:  # a client secret's: as a session.update, before session.created
            try:
                self._update({"session": dict(session)})
            except Invalid as exc:
                self._start_notice = exc.detail()

    def _known(self, model: str) -> bool:
        return self._models is None or model in self._models

    def _model_not_found(self, model: str, param: str) -> Invalid:
        available = ", ".join(self._models or ())
        return Invalid(
            "model_not_found", f"unknown model: {model!r} (available: {available})", param
        )

    # -- client to server -------------------------------------------------------

    def receive(self, frame: bytes) -> Events:
        """Decode one client event; a refused one becomes an ``error`` event."""
        try:
            event = _decoder.decode(frame)
        except (msgspec.DecodeError, RecursionError) as exc:
            return self._refusal(Invalid("invalid_json", f"malformed JSON frame: {exc}"))
        event_id = event.get("event_id")
        event_id = event_id if isinstance(event_id, str) else None
        kind = event.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        try:
            if handler is None:
                raise unknown_event(kind)
            return handler(self, event)
        except Invalid as exc:
            return self._refusal(exc, event_id)

    def _reply(self, kind: str, fields: dict[str, Any]) -> Reply:
        # Every event is answered in arrival order, as OpenAI's server does.
        return Reply(functools.partial(self._emit, kind, fields), in_order=True)

    def _refusal(self, exc: Invalid, event_id: str | None = None) -> Reply:
        """An ``error`` event, in order with the answers to the events before it."""
        return Reply(functools.partial(self.error, exc.detail(event_id)), in_order=True)

    def refused(self, detail: ErrorDetail) -> Reply:
        """An ``error`` event, in order."""
        return Reply(functools.partial(self.error, detail), in_order=True)

    def binary(self) -> Reply:
        """Realtime events are JSON Text frames: a Binary frame is refused in band."""
        message = "binary frames not supported: send JSON events as Text frames"
        return self._refusal(Invalid("invalid_request", message))

    def _update(self, event: dict[str, Any]) -> Event:
        """Check every field first; apply them all (but audio output), or none."""
        fields = required(event, "session", dict)
        names = self._names
        audio_fields = BETA_FIELDS if names.beta else frozenset({"audio"})
        settings, others, not_applied = check_settings(
            fields,
            self._settings,
            names,
            "session",
            extra=frozenset({"type", "model", "resumable", "include"}) | audio_fields,
            speaks=self._voice is not None,
        )
        self._check_voice(settings, "session")
        resumable = others.get("resumable", self._resumable)
        if not isinstance(resumable, bool):
            raise Invalid(
                "invalid_type", "session.resumable must be a boolean", "session.resumable"
            )
        if resumable and self._resume is None:
            raise Invalid("resume_unavailable", RESUME_UNAVAILABLE, "session.resumable")
        transcription = self._session_type(others.get("type", ABSENT))
        audio = self._audio_settings(others)
        model = others.get("model", self.model)
        if "model" in others:
            if not isinstance(model, str):
                raise Invalid("invalid_type", "session.model must be a string", "session.model")
            if not self._known(model):
                raise self._model_not_found(model, "session.model")
            if (refused := refusal(self._grant, model)) is not None:
                raise Invalid(refused.code, refused.message, "session.model")
        self._settings, self.model, self._resumable = settings, model, resumable
        self._transcription = transcription
        if self._ears is not None and audio is not None:
            self._ears.update(audio)
        notice = None if not_applied is None else not_applied.detail(event.get("event_id"))
        return Reply(functools.partial(self._updated, notice), in_order=True)

    def _create_response(self, event: dict[str, Any]) -> Events:
        return self._respond(event.get("response"), event.get("event_id"))

    def _respond(self, fields: Any, event_id: object, turn: str | None = None) -> Events:
        """A response, as ``response.create`` asks (or a detected turn's end, ``turn``
        its item); it waits for the transcripts of the conversation's audio items."""
        if self._transcription:
            raise NO_RESPONSES
        if self.draining:
            raise Invalid("shutting_down", "server shutting down: no new responses")
        asked = ResponseCreate.check(
            fields, self._settings, self._names, self._conversation, self._voice is not None
        )
        self._check_voice(asked.settings, "response")
        if asked.in_band and self._in_band is not None:
            raise Invalid(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._in_band}."
                " Wait until the response is finished before creating a new one.",
            )
        if self.model is None:
            if self._unknown_model is not None:
                raise self._model_not_found(self._unknown_model, "session.model")
            raise Invalid(
                "missing_required_parameter",
                "no model: connect with ?model=NAME or send session.update with session.model",
                "session.model",
            )
        audio = self._audio_input()
        waits = asked.in_band and audio is None and self._ears is not None and self._ears.waits()
        request = None if waits else asked.request(self.model, audio)
        response_id = self._conversation.new_id("resp")
        self._made_response = True
        self._responses[response_id] = self._new_response(asked, response_id)
        if asked.in_band:
            self._in_band = response_id
        if asked.not_applied is not None:
            self._notices[response_id] = asked.not_applied.detail(event_id)
        if request is None:
            self._waiting = (asked, response_id, turn)
            return ()
        return Submit(request, response_id)

    def _cancel(self, event: dict[str, Any]) -> Event:
        response_id = event.get("response_id") or self._in_band
        response = self._responses.get(response_id) if isinstance(response_id, str) else None
        if response is None or response.done:
            raise Invalid(
                "response_cancel_not_active",
                "Cancellation failed: no active response found.",
                "response_id",
            )
        if self._waiting is not None and self._waiting[1] == response.id:
            self._waiting = None  # still waiting for transcripts: it ends here
            return Reply(functools.partial(self._end_waiting, response.id, None), in_order=True)
        return Cancel(response.id)

    def release(self, request_id: str) -> None:
        """A response is over: close it (``response.done``) if nothing else did."""
        response = self._responses.pop(request_id, None)
        if response is not None:
            response.complete()
            self._spoken(response)
        self._notices.pop(request_id, None)
        if self._in_band == request_id:
            self._in_band = None
            self._response_ended = time.monotonic()

    # -- server to client -------------------------------------------------------

    def opened(self) -> None:
        """``session.created``, the first event of every session."""
        self._emit("session.created", {"session": self._session()})
        if self._start_notice is not None:
            self.error(self._start_notice)
        if self._unknown_model is not None:
            self.error(self._model_not_found(self._unknown_model, "model").detail())
        if self._deaf:
            self.error(unsupported("intent", "a transcription session").detail())

    def _updated(self, notice: ErrorDetail | None = None) -> None:
        """``session.updated``, with the session as it is when the event is answered;
        then the ``error`` saying what the update asked for and did not get, if any."""
        self._emit("session.updated", {"session": self._session()})
        if notice is not None:
            self.error(notice)

    def _session(self) -> dict[str, Any]:
        beta = self._names.beta
        if self._transcription:
            return self._transcription_session()
        session: dict[str, Any] = {"id": f"sess_{self._session_id}", "object": "realtime.session"}
        if not beta:
            session["type"] = "realtime"
        session["model"] = self.model
        session.update(self._settings.shown(self._names))
        self._show_audio(session)
        resume_state(session, self._resume, self._resumable)
        return session

    def drain(self) -> None:
        """No new responses; the client hears why before the close (1001)."""
        self.draining = True
        self.error(
            ErrorDetail(
                code="shutting_down",
                message="server shutting down: responses in progress finish, new ones are refused",
            )
        )

    def started(self, request_id: str | None) -> Response:
        """``response.created``; the response takes the answer's events."""
        assert request_id is not None
        response = self._responses[request_id]
        response.start()
        limits = self._grant.limits() if self._grant is not None else ()
        if limits:  # as OpenAI's: when each response starts, as of the last one's end
            self._emit("rate_limits.updated", {"rate_limits": [f.shown() for f in limits]})
        notice = self._notices.pop(request_id, None)
        if notice is not None:  # after response.created: the response is not refused
            self.error(notice)
        return response

    def cancelled(self, request_id: str) -> None:
        response = self._responses.get(request_id)
        reason = self._cancel_reasons.pop(request_id, "client_cancelled")
        if response is not None:
            response.cancel(reason)

    def error(self, detail: ErrorDetail, request_id: str | None = None) -> None:
        """A response's failure ends it (``response.done``, ``failed``); any other is
        an ``error`` event."""
        kind = (
            "server_error"
            if detail.code in _SERVER_ERRORS or detail.upstream
            else ("invalid_request_error")
        )
        response = self._responses.get(request_id) if request_id is not None else None
        if response is not None and not response.done and response.created:
            response.fail(detail, kind)
            return
        if response is not None and not response.created and request_id is not None:
            del self._responses[request_id]  # refused before it started (a key's quota)
            self.release(request_id)
        code = detail.code
        if code == "unknown_request_id":  # a cancel that came as the response ended
            code = "response_cancel_not_active"
        error: dict[str, Any] = {
            "type": kind,
            "code": code,
            "message": detail.message,
            "param": detail.param,
            "event_id": detail.event_id,
        }
        if detail.retry_after is not None:
            error["retry_after"] = detail.retry_after
        self._emit("error", {"error": error})


_Handler = Callable[[RealtimeDialect, dict[str, Any]], Events]

_HANDLERS: dict[str, _Handler] = {
    "session.update": RealtimeDialect._update,
    "conversation.item.create": RealtimeDialect._create_item,
    "conversation.item.delete": RealtimeDialect._delete_item,
    "conversation.item.retrieve": RealtimeDialect._retrieve_item,
    "response.create": RealtimeDialect._create_response,
    "response.cancel": RealtimeDialect._cancel,
    "input_audio_buffer.clear": RealtimeDialect._clear_audio,
    "input_audio_buffer.append": RealtimeDialect._append_audio,
    "input_audio_buffer.commit": RealtimeDialect._commit_audio,
    "transcription_session.update": RealtimeDialect._update_transcription,
    "conversation.item.truncate": RealtimeDialect._truncate,
}
"""The client events a Realtime session answers, by type."""
