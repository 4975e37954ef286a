"""The Realtime dialect's voice events: input audio, transcription sessions, turns.

A part of :class:`~.dialect.RealtimeDialect`, kept apart for its size: the
client events that carry or configure input audio, and what the session's
:class:`~.voice.Ears` tell the dialect (:class:`~.voice.Listener`): speech
began (barge-in), a turn ended (its response), a transcript came (the
responses that waited for it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from realtime_daemon.dialects.realtime.audio_input import (
    BETA_FIELDS,
    InputAudio,
    check_input_audio,
)
from realtime_daemon.dialects.realtime.audio_output import voice_param
from realtime_daemon.dialects.realtime.conversation import Conversation
from realtime_daemon.dialects.realtime.pieces import heard
from realtime_daemon.dialects.realtime.request import ResponseCreate
from realtime_daemon.dialects.realtime.response import Response, Writer
from realtime_daemon.dialects.realtime.speaking import SpokenResponse, Voice
from realtime_daemon.dialects.realtime.voice import Ears
from realtime_daemon.dialects.realtime.wire import Invalid, Names, Settings, required, unsupported
from realtime_daemon.wire.chat import ErrorDetail
from realtime_daemon.wire.events import Cancel, Event, Events, Reply, Submit

__all__ = ["ABSENT", "NO_RESPONSES", "VoiceEvents", "unknown_event"]

ABSENT = object()
"""A field not given (a null is given, and refused where it is no value)."""

NO_RESPONSES = Invalid("invalid_request", "a transcription session makes no responses", "type")
"""What ``response.create`` gets in a transcription session."""

_AUDIO_OUT = frozenset({"output_audio_buffer.clear", "conversation.item.truncate"})
_SUPPORTED = (
    "session.update, transcription_session.update, conversation.item.create,"
    " conversation.item.delete, conversation.item.retrieve, response.create,"
    " response.cancel, input_audio_buffer.append, input_audio_buffer.commit and"
    " input_audio_buffer.clear"
)


def unknown_event(kind: object) -> Invalid:
    """The refusal of a client event type the dialect does not answer."""
    if kind == "output_audio_buffer.clear":
        return Invalid(
            "unsupported_modality",
            f"{kind} is for WebRTC and SIP connections: over a WebSocket, response.cancel"
            " stops the answer and the client drops what it has not played",
            "type",
        )
    if isinstance(kind, str) and kind in _AUDIO_OUT:
        return Invalid(
            "unsupported_modality",
            f"{kind} is not supported: this server answers in text only; start it with"
            " --tts NAME to speak",
            "type",
        )
    shown = kind if isinstance(kind, str) else repr(kind)
    return Invalid(
        "invalid_value", f"Invalid value: {shown!r}. Supported values are: {_SUPPORTED}.", "type"
    )


class VoiceEvents:
    """The voice half of the Realtime dialect (a mixin of it)."""

    _ears: Ears | None
    _names: Names
    _session_id: str
    _responses: dict[str, Response]
    _in_band: str | None
    _transcription: bool
    _made_response: bool
    _waiting: tuple[ResponseCreate, str, str | None] | None
    _cancel_reasons: dict[str, str]
    _emit: Callable[[str, dict[str, Any]], None]
    _response_ended: float | None
    _voice: Voice | None
    _voiced: str | None
    _said: dict[str, list[tuple[str, int]]]  # assistant audio items: pieces and their ms
    _conversation: Conversation
    _settings: Settings
    _writer: Writer
    model: str | None

    # The dialect's own, used here.
    def _reply(self, kind: str, fields: dict[str, Any]) -> Reply:
        raise NotImplementedError

    def _refusal(self, exc: Invalid, event_id: str | None = None) -> Reply:
        raise NotImplementedError

    def _respond(self, fields: Any, event_id: object, turn: str | None = None) -> Events:
        raise NotImplementedError

    def _session(self) -> dict[str, Any]:
        raise NotImplementedError

    def release(self, request_id: str) -> None:
        raise NotImplementedError

    # -- client events ---------------------------------------------------------------

    def _spoken(self, response: Response) -> None:
        """A spoken response ended: keep what its item said, for truncation."""
        if isinstance(response, SpokenResponse) and response.item_id is not None:
            self._said[response.item_id] = response.said
            for item_id in [i for i in self._said if self._conversation.get(i) is None]:
                del self._said[item_id]

    def _new_response(self, asked: ResponseCreate, response_id: str) -> Response:
        """The response ``asked`` for: spoken when its output modalities say audio."""
        args = (
            response_id,
            self._names,
            self._writer,
            asked.settings,
            self._conversation if asked.in_band else None,
            f"conv_{self._session_id}",
            asked.metadata,
        )
        if asked.settings.spoken and self._voice is not None:
            self._voiced = asked.settings.output.voice or self._voice.default
            return SpokenResponse(self._voice, *args)
        return Response(*args)

    def _show_audio(self, session: dict[str, Any]) -> None:
        """The audio settings a session shows: input with ``--stt``, output with ``--tts``."""
        beta, shown = self._names.beta, {}
        if self._ears is not None:
            shown["input"] = self._ears.settings.shown(beta)
        if self._voice is not None:
            shown["output"] = self._settings.output.shown(beta, self._voice.default)
        if beta:
            for part in shown.values():
                session.update(part)
        elif shown:
            session["audio"] = shown

    def _check_voice(self, settings: Settings, where: str) -> None:
        """As at OpenAI, the voice is fixed once the session has spoken."""
        voice = self._voice
        if voice is None or self._voiced is None:
            return
        asked = settings.output.voice or voice.default
        if asked != self._voiced:
            param = voice_param(where, self._names.beta)
            raise Invalid(
                "cannot_update_voice",
                f"{param}: the voice cannot change once the session has spoken"
                f" (it speaks as {self._voiced!r})",
                param,
            )

    def _truncate(self, event: dict[str, Any]) -> Event:
        """``conversation.item.truncate``: an assistant's audio item cut to what the client
        played, its transcript to the words spoken by then."""
        if self._voice is None:
            raise unknown_event("conversation.item.truncate")
        item_id = required(event, "item_id", str)
        item = self._conversation.get(item_id)
        said = self._said.get(item_id)
        if item is None or said is None:
            raise Invalid(
                "invalid_value",
                f"item {item_id!r} is not an assistant audio item of this session",
                "item_id",
            )
        index = event.get("content_index", 0)
        if index != 0:
            raise Invalid("invalid_value", "content_index must be 0", "content_index")
        end = event.get("audio_end_ms")
        total = sum(ms for _, ms in said)
        if not isinstance(end, int) or isinstance(end, bool) or not 0 <= end <= total:
            raise Invalid(
                "invalid_value",
                f"audio_end_ms must be an integer from 0 to the audio's {total} ms",
                "audio_end_ms",
            )
        item["content"][0]["transcript"] = heard(said, end)
        self._said[item_id] = [(item["content"][0]["transcript"], end)]
        self._conversation.settle(item)
        fields = {"item_id": item_id, "content_index": 0, "audio_end_ms": end}
        return self._reply("conversation.item.truncated", fields)

    def _clear_audio(self, event: dict[str, Any]) -> Event:
        if self._ears is None:  # no audio comes in without --stt: nothing to clear
            return self._reply("input_audio_buffer.cleared", {})
        return self._ears.clear()

    def _append_audio(self, event: dict[str, Any]) -> Events:
        return self._hearing("input_audio_buffer.append").append(event)

    def _commit_audio(self, event: dict[str, Any]) -> Events:
        return self._hearing("input_audio_buffer.commit").commit(event)

    def _hearing(self, kind: str) -> Ears:
        if self._ears is None:
            raise unsupported("type", kind)
        return self._ears

    def _session_type(self, kind: object) -> bool:
        """Whether the session is (now) a transcription session (``kind`` ABSENT: as
        it was)."""
        if kind is ABSENT:
            return self._transcription
        if kind not in ("realtime", "transcription"):
            raise Invalid(
                "invalid_value", "session.type must be realtime or transcription", "session.type"
            )
        if kind == "transcription" and self._ears is None:
            raise unsupported("session.type", "a transcription session")
        if (kind == "transcription") != self._transcription and self._made_response:
            raise Invalid(
                "invalid_value",
                "session.type cannot change once the session has made a response",
                "session.type",
            )
        return kind == "transcription"

    def _audio_settings(self, others: dict[str, Any]) -> InputAudio | None:
        if self._ears is None:
            return None  # a text daemon accepts audio settings and uses none of them
        return check_input_audio(others, self._ears.settings, beta=self._names.beta)

    def _update_transcription(self, event: dict[str, Any]) -> Event:
        """beta ``transcription_session.update``: a transcription session's settings."""
        fields = required(event, "session", dict)
        ears = self._hearing("transcription_session.update")
        known = BETA_FIELDS | {"include", "modalities", "client_secret"}
        for name in fields:
            if name not in known:
                at = f"session.{name}"
                raise Invalid("unknown_parameter", f"Unknown parameter: '{at}'.", at)
        audio = check_input_audio(fields, ears.settings, beta=True)
        if self._made_response and not self._transcription:
            raise Invalid(
                "invalid_value",
                "a session that made a response cannot become a transcription session",
                "session",
            )
        self._transcription = True
        ears.update(audio)
        return Reply(self._transcription_updated, in_order=True)

    def _transcription_updated(self) -> None:
        self._emit("transcription_session.updated", {"session": self._session()})

    # -- what the ears tell (voice.Listener) ----------------------------------------

    def _end_waiting(self, response_id: str, failure: ErrorDetail | None) -> None:
        """A response that never reached an engine ends: cancelled, or failed."""
        response = self._responses.get(response_id)
        if response is not None:
            if failure is None:
                response.cancel()
            else:
                response.fail(failure, "server_error")
        self.release(response_id)

    def emit(self, kind: str, fields: dict[str, Any]) -> None:
        self._emit(kind, fields)

    def turn_started(self) -> Event | None:
        """Speech began: with ``interrupt_response``, the running response is cut."""
        assert self._ears is not None
        turn = self._ears.settings.turn_detection
        response = self._responses.get(self._in_band) if self._in_band is not None else None
        if turn is None or not turn.interrupt_response or response is None or response.done:
            return None
        if self._waiting is not None and self._waiting[1] == response.id:
            return None  # not started: the turn's own response will follow it
        self._cancel_reasons[response.id] = "turn_detected"
        return Cancel(response.id)

    def _audio_input(self) -> Callable[[str], bytes | None] | None:
        """Where a response of the session's model finds an audio item's WAV, when the
        model takes audio itself (``audio_input = "passthrough"``); None: transcripts."""
        ears = self._ears
        if ears is None or self.model is None or self.model not in ears.passthrough:
            return None
        return ears.audio_of

    def responding_since(self) -> float | None:
        if self._in_band is not None:
            return float("inf")
        return self._response_ended

    def turn_ended(self, item_id: str | None) -> tuple[Event, ...]:
        """A detected turn ended: with ``create_response``, a response (an ``error``
        instead when one is already running, as ``response.create`` would get)."""
        assert self._ears is not None
        turn = self._ears.settings.turn_detection
        if turn is None or not turn.create_response or self._transcription:
            return ()
        try:
            made = self._respond(None, None, turn=item_id)
        except Invalid as exc:
            return (self._refusal(exc),)
        return made if isinstance(made, tuple) else (made,)

    def transcribed(self) -> tuple[Event, ...]:
        """A transcript is in: the response that waited for it may start."""
        waiting = self._waiting
        if waiting is None or self._ears is None or self._ears.waits():
            return ()
        self._waiting = None
        asked, response_id, turn = waiting
        failure = None
        if turn is not None and turn in self._ears.failed:
            failure = ErrorDetail(
                code="transcription_failed", message="the turn's audio could not be transcribed"
            )
        elif self.model is not None:
            try:
                return (Submit(asked.request(self.model, self._audio_input()), response_id),)
            except Invalid as exc:
                failure = exc.detail()
        return (Reply(functools.partial(self._end_waiting, response_id, failure), in_order=True),)

    def _transcription_session(self) -> dict[str, Any]:
        assert self._ears is not None
        beta = self._names.beta
        session: dict[str, Any] = {
            "id": f"sess_{self._session_id}",
            "object": "realtime.transcription_session",
        }
        heard = self._ears.settings.shown(beta)
        if beta:
            session.update(heard)
        else:
            session.update({"type": "transcription", "audio": {"input": heard}})
        return session
