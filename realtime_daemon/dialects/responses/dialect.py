"""The OpenAI Responses API over WebSocket: ``response.create`` in, the SSE stream's events out.

Each ``response.create`` (the HTTP ``POST /v1/responses`` body) becomes one
chat-completion request, which any engine answers; its chunks become the
response's events (:mod:`.response`). A response continues another by
``previous_response_id``: the connection keeps its responses' chains
(:class:`~.store.Chains`), and ``store: true`` ones also go to the response
store, which a chain is looked up in when the connection does not know it
(a :class:`~realtime_daemon.wire.events.Work`: the session awaits the store,
the dialect never does). One response runs at a time per lane (``stream_id``);
lanes run side by side. A refused event gets an ``error`` event naming the
``param``, and the connection goes on.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Sequence
from typing import Any

import msgspec

from realtime_daemon.dialects import FrameWriter
from realtime_daemon.dialects.responses.items import Invalid, items_size
from realtime_daemon.dialects.responses.lanes import HANDED, Lanes
from realtime_daemon.dialects.responses.request import Create
from realtime_daemon.dialects.responses.response import Response, Writer
from realtime_daemon.dialects.responses.store import (
    Chain,
    Chains,
    ResponseStore,
    StoreUnavailable,
)
from realtime_daemon.wire.chat import ErrorDetail
from realtime_daemon.wire.events import Event, Reply, Submit, Work

__all__ = ["NAME", "ResponsesDialect"]

NAME = "openai-responses"
_decoder = msgspec.json.Decoder(dict[str, Any])
_SERVER_ERRORS = {
    "shutting_down": 503,
    "store_unavailable": 503,
    "websocket_connection_limit_reached": 400,
    "engine_error": 500,
    "request_failed": 502,
    "server_error": 500,
}

_Lookup = list[dict[str, Any]] | ErrorDetail | None


class ResponsesDialect:
    """One connection's Responses session: its chains and its responses.

    Args:
        outbox: where events go.
        session_id: the connection's id (its responses' ids start with it).
        models: the models a response may ask for; None when any is taken.
        concurrency_limit: responses running at once (one per lane).
        max_items: items a chain holds at most, and the connection keeps.
        max_bytes: JSON bytes of items a chain holds at most, and the connection keeps.
        store: where ``store: true`` responses outlive the connection; None: nowhere.
    """

    name = NAME

    def __init__(
        self,
        outbox: FrameWriter,
        session_id: str,
        *,
        models: Collection[str] | None,
        concurrency_limit: int,
        max_items: int,
        max_bytes: int,
        store: ResponseStore | None,
    ) -> None:
        self._writer = Writer(outbox)
        self._session_id = session_id
        self._models = models
        self._chains = Chains(max_items, max_bytes)
        self._store = store
        self._responses: dict[str, Response] = {}
        self._kept: dict[str, tuple[Chain, int]] = {}  # each response's chain, until it ends
        self._lanes = Lanes()
        self._max_waiting = max_items  # creates in one lane's line at most
        self._count = 0
        self.max_concurrent = concurrency_limit
        self.draining = False

    # -- client to server -------------------------------------------------------

    def receive(self, frame: bytes) -> Event:
        """Decode one client event; a refused one becomes an ``error`` event."""
        try:
            event = _decoder.decode(frame)
        except (msgspec.DecodeError, RecursionError) as exc:
            return self._refusal(Invalid("invalid_json", f"malformed JSON frame: {exc}"))
        kind = event.get("type")
        lane = event.get("stream_id") if isinstance(event.get("stream_id"), str) else None
        try:
            if kind == "response.create":
                return self._create(event)
            if kind == "response.steer":
                raise Invalid(
                    "unsupported_event",
                    "response.steer is not supported: send a new response.create",
                    "type",
                )
            shown = kind if isinstance(kind, str) else repr(kind)
            raise Invalid(
                "invalid_value", f"unknown event type {shown!r}: send response.create", "type"
            )
        except Invalid as exc:
            return self._refusal(exc, lane)

    def _refusal(self, exc: Invalid, lane: str | None = None) -> Reply:
        detail = ErrorDetail(code=exc.code, message=str(exc), param=exc.param)
        return Reply(functools.partial(self._error, detail, lane), in_order=True)

    def _create(self, body: dict[str, Any]) -> Event:
        if self.draining:
            raise Invalid("shutting_down", "server shutting down: no new responses")
        create = Create.check(body)
        if self._models is not None and create.model not in self._models:
            available = ", ".join(self._models)
            raise Invalid(
                "model_not_found",
                f"unknown model {create.model!r} (available: {available})",
                "model",
            )
        lane = create.stream_id
        running = self._lanes.running(lane)
        if running is None:
            return self._go(create)
        if lane is None:
            raise Invalid(
                "response_already_in_progress",
                f"response {running or 'next'} is in progress: wait for its end, or name"
                " lanes with stream_id (creates on one lane run in order)",
            )
        if self._lanes.waiting(lane) >= self._max_waiting:
            raise Invalid("too_many_queued", f"lane {lane!r} has too many creates waiting")
        turn = self._lanes.queue(lane)
        return Work(turn.wait, functools.partial(self._turn_came, create))

    def _turn_came(self, create: Create, outcome: ErrorDetail | None) -> Sequence[Event]:
        """A create's lane is free: it runs now (or is refused, and the lane goes on)."""
        lane = create.stream_id
        try:
            if isinstance(outcome, ErrorDetail):
                raise Invalid(outcome.code, outcome.message)
            return (self._go(create),)
        except Invalid as exc:
            self._lanes.free(lane, HANDED)
            return (self._refusal(exc, lane),)

    def _go(self, create: Create) -> Event:
        """Start a create whose lane is free: its chain, here or in the store."""
        self._count += 1
        response_id = f"resp_{self._session_id}{self._count:x}"
        previous = create.previous_response_id
        if previous is None:
            return self._begin(create, response_id, Chain((), 0))
        chain = self._chains.get(previous)
        if chain is not None:
            return self._begin(create, response_id, chain)
        if self._store is None:
            raise _not_found(previous)
        self._lanes.take(create.stream_id, response_id)  # busy while the store is asked
        return Work(
            functools.partial(self._look_up, previous),
            functools.partial(self._looked_up, create, response_id),
        )

    async def _look_up(self, response_id: str) -> _Lookup:
        """The session's job: ask the store (its expected failure as a value)."""
        assert self._store is not None
        try:
            return await self._store.get(response_id)
        except StoreUnavailable as exc:
            return ErrorDetail(
                code="store_unavailable",
                message=f"the response store cannot be reached ({exc}): responses of this"
                " connection can still be continued",
                param="previous_response_id",
            )

    def _looked_up(
        self, create: Create, response_id: str, outcome: _Lookup | ErrorDetail
    ) -> Sequence[Event]:
        if not isinstance(outcome, list):
            self._lanes.free(create.stream_id, response_id)
        if isinstance(outcome, ErrorDetail):
            return (Reply(functools.partial(self._error, outcome, create.stream_id)),)
        try:
            if outcome is None:
                raise _not_found(create.previous_response_id)
            chain = Chain(tuple(outcome), items_size(outcome))
            return (self._begin(create, response_id, chain),)
        except Invalid as exc:
            self._lanes.free(create.stream_id, response_id)
            return (self._refusal(exc, create.stream_id),)

    def _begin(self, create: Create, response_id: str, chain: Chain) -> Event:
        """The response's chain, bounded; then its request (or its warm-up)."""
        items = (*chain.items, *create.input)
        size = chain.size + items_size(create.input)
        limits = self._chains
        if len(items) > limits.max_items or size > limits.max_bytes:
            raise Invalid(
                "conversation_full",
                f"the conversation would hold {len(items)} items ({size} bytes): at most"
                f" {limits.max_items} items and {limits.max_bytes} bytes; start a new chain",
                "input",
            )
        request = create.request(list(items)) if create.generate else None
        response = Response(response_id, create, self._writer, int(time.time()), self._ended)
        self._responses[response_id] = response
        self._kept[response_id] = (Chain(items, size), size - chain.size)
        self._lanes.take(create.stream_id, response_id)
        if request is None:
            return Reply(functools.partial(self._warm_up, response), in_order=True)
        return Submit(request, response_id)

    def _warm_up(self, response: Response) -> None:
        """``generate: false``: the state is ready, nothing goes upstream."""
        response.start()
        response.complete()
        self.release(response.id)

    # -- the session's calls ----------------------------------------------------

    def refused(self, detail: ErrorDetail) -> Reply:
        """An ``error`` event, in order."""
        return Reply(functools.partial(self._error, detail, None), in_order=True)

    def binary(self) -> Reply:
        """Responses events are JSON Text frames: a Binary frame is refused in band."""
        return self._refusal(
            Invalid("invalid_request", "binary frames not supported: send JSON events as Text")
        )

    def opened(self) -> None:
        """Nothing: the client speaks first."""

    def drain(self) -> None:
        """No new responses (``shutting_down``); those in progress finish."""
        self.draining = True

    def expired(self) -> None:
        """The connection reached ``--max-session-duration``."""
        detail = ErrorDetail(
            code="websocket_connection_limit_reached",
            message="this connection reached its time limit: open a new one to go on",
        )
        self._error(detail, None)

    def started(self, request_id: str | None) -> Response:
        """``response.created``; the response takes the answer's events."""
        assert request_id is not None
        response = self._responses[request_id]
        response.start()
        return response

    def error(self, detail: ErrorDetail, request_id: str | None = None) -> None:
        """A started response's failure ends it (``response.failed``); any other is an
        ``error`` event."""
        response = self._responses.get(request_id) if request_id is not None else None
        if response is not None and response.created and not response.done:
            response.fail(detail)
            return
        self._error(detail, response.create.stream_id if response is not None else None)

    def cancelled(self, request_id: str) -> None:
        response = self._responses.get(request_id)
        if response is not None and not response.done:
            response.fail(ErrorDetail(code="cancelled", message="response cancelled"))

    def release(self, request_id: str) -> None:
        """A response is over: close it (``response.completed``) if nothing else did,
        and free its lane."""
        response = self._responses.pop(request_id, None)
        if response is not None and response.created:
            response.complete()
        self._kept.pop(request_id, None)
        if response is not None:
            self._lanes.free(response.create.stream_id, request_id)

    def _ended(self, response: Response) -> None:
        """A response ended: a completed or incomplete one can be continued."""
        kept = self._kept.pop(response.id, None)
        if kept is None or response.status == "failed":
            return
        (chain, added), output = kept, response.output_items()
        size = items_size(output)
        whole = Chain((*chain.items, *output), chain.size + size)
        added_items = len(response.create.input) + len(output)
        self._chains.add(response.id, whole, (added_items, added + size))
        if response.create.store and self._store is not None:
            self._store.put(response.id, list(whole.items))

    def _error(self, detail: ErrorDetail, lane: str | None) -> None:
        status = _SERVER_ERRORS.get(detail.code, 400)
        if detail.upstream is not None and detail.upstream.status:
            status = detail.upstream.status
        error = {
            "type": "server_error" if status >= 500 else "invalid_request_error",
            "code": detail.code,
            "message": detail.message,
            "param": detail.param,
        }
        fields: dict[str, Any] = {"status": status, "error": error}
        if lane is not None:
            fields["stream_id"] = lane
        self._writer.event("error", fields)


def _not_found(response_id: str | None) -> Invalid:
    return Invalid(
        "previous_response_not_found",
        f"Previous response with id {response_id!r} not found.",
        "previous_response_id",
    )
