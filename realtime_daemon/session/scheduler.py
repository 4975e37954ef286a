"""The session scheduler: a connection's requests become answers, each a task.

:meth:`Session.run` takes events from the connection's channel: control
events at once, requests while fewer than the session's
``max_concurrent_requests`` answers run. Each answer is a task of the
session's TaskGroup awaiting its engine's ``relay`` (every engine has one
once loaded), which hands envelopes over, from its upstream's callbacks or
its answer's iterator, through the answer's :class:`~.delivery.AnswerDelivery`. Each
envelope goes to the answer's output the dialect gave: as it is (chat
frames), or read once into neutral events
(:func:`~realtime_daemon.wire.chunks.read_envelope`); the dialect writes
frames through the outbox, which numbers them. The session owns the order
and concurrency of answers, their cancellation (``request.cancel``, the
client gone, the shutdown deadline), their errors, and their accounting. It
knows nothing of aiohttp: the transport (:mod:`realtime_daemon.transport`)
reads frames into the channel and maps the session's :class:`Ending` to a
close code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

import structlog

from realtime_daemon.dialects import Dialect, Passthrough
from realtime_daemon.engines.base import Context, RequestContext, RequestFailed
from realtime_daemon.engines.routes import Route, Routes
from realtime_daemon.engines.stream import StreamEnded
from realtime_daemon.session.answers import Answer, Ending, SessionObserver, SessionOver
from realtime_daemon.session.channel import RequestChannel
from realtime_daemon.session.delivery import AnswerDelivery
from realtime_daemon.session.outbox import ClientTooSlow, Outbox, PeerGone
from realtime_daemon.wire.chat import Envelope, ErrorDetail, Request, is_finish
from realtime_daemon.wire.chunks import read_envelope, usage_of
from realtime_daemon.wire.events import Cancel, Event, Reply, Submit, Work
from realtime_daemon.wire.grants import Grant

__all__ = ["CUT_NOTICE", "Ending", "Session", "SessionObserver"]

logger = structlog.get_logger("realtime_daemon")

CUT_NOTICE = "answer cut: server shutting down"


class Session:
    """One connection's scheduler.

    Args:
        routes: which engine answers which model.
        dialect: the connection's wire dialect.
        channel: the events the reader decoded.
        outbox: where envelopes are numbered and written.
        context: the session's context, shared by its answers.
        observer: told of answers (metrics).
        peer: the client's address, for the log.
        grant: the client's key's models and quotas; None without keys.
    """

    __slots__ = (
        "_by_id",
        "_channel",
        "_counted",
        "_cut",
        "_dialect",
        "_expired",
        "_group",
        "_index",
        "_loop",
        "_metrics",
        "_outbox",
        "_revoked",
        "_routes",
        "_running",
        "_tasks",
        "context",
        "grant",
        "peer",
    )

    def __init__(
        self,
        routes: Routes,
        dialect: Dialect,
        channel: RequestChannel,
        outbox: Outbox,
        context: Context,
        observer: SessionObserver,
        peer: str,
        grant: Grant | None = None,
    ) -> None:
        self._routes = routes
        self._dialect = dialect
        self._channel = channel
        self._outbox = outbox
        self._metrics = observer
        self._loop = asyncio.get_running_loop()
        self._running: list[Answer] = []
        self._tasks: list[asyncio.Task[None]] | None = None  # engines' (Context.start_task)
        self._by_id: dict[str, Answer] | None = None  # made when a request has an id
        self._group: asyncio.TaskGroup | None = None
        self._index = 0
        self._counted = 0  # envelopes added to the chunks metric so far
        self._cut = False
        self._revoked: str | None = None
        self.grant = grant
        self._expired = False
        self.context = context
        self.peer = peer

    @property
    def busy(self) -> bool:
        """Whether a request is being answered or waits in the queue."""
        return bool(self._running) or len(self._channel) > 0

    async def run(self) -> Ending:
        """Answer the channel's requests until it ends; say why the session ended."""
        ending: Ending | None = None
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self.context._spawn = self._spawn
                self._dialect.opened()
                # The loop is here, not in a coroutine of its own: an idle
                # connection waits in it, and every frame costs memory.
                while (event := await self._channel.get(self._has_room, self._idle)) is not None:
                    self._handle(event)
                    await self._outbox.settle()
                await self._wind_down()
        except* SessionOver as over:
            first = over.exceptions[0]
            assert isinstance(first, SessionOver)
            ending = first.ending
        except* ClientTooSlow:
            ending = Ending("too_slow")
        except* PeerGone:
            ending = Ending("peer_gone")
        finally:
            self._group = None
            self.context._spawn = None
            self.context.stop_generating()
            self._metrics.sent(max(0, self._outbox.count - self._counted))
            self._counted = self._outbox.count
        if ending is not None:
            return ending
        if self._revoked is not None:
            return Ending("revoked", self._revoked)
        if self._expired:
            return Ending("expired")
        if self._cut:
            return Ending("shutdown_cut")
        return Ending("client_gone" if self._channel.aborted else "complete")

    async def _wind_down(self) -> None:
        """No more events: cut the answers if the client is gone, else let them finish."""
        if self._channel.aborted:
            for answer in self._running:
                answer.cancel(answer.reason)
        while self._running:
            await asyncio.wait([a.task for a in self._running if a.task is not None])
        for task in self._tasks or ():
            task.cancel()  # the engines' session tasks end with the session

    def cut(self) -> None:
        """The drain's deadline: cut the answers still running, drop the queued ones."""
        self._cut = True
        for answer in self._running:
            if not answer.ended:
                detail = ErrorDetail(code="shutting_down", message=CUT_NOTICE)
                self._dialect.error(detail, answer.context.request_id)
            answer.cancel("shutdown")  # answered: only its tail (e.g. [DONE]) is cut
        self._channel.abort()
        self._outbox.give_up()  # writers waiting for a held session's connection, too

    def revoke(self, reason: str) -> None:
        """The session's key is gone: cut its answers, drop its queue, end it (1008)."""
        self._revoked = reason
        for answer in self._running:
            answer.cancel("revoked")
        self._channel.abort()
        self._outbox.give_up()

    def expire(self) -> None:
        """The session's time is up (``--max-session-duration``; the dialect said so):
        cut its answers, drop its queue."""
        self._expired = True
        for answer in self._running:
            answer.cancel("session_expired")
        self._channel.abort()

    def _handle(self, event: Event) -> None:
        if isinstance(event, Submit):
            self._start(event.request, event.request_id)
        elif isinstance(event, Cancel):
            self._cancel(event.request_id)
        elif isinstance(event, Reply):
            event.send()
        elif isinstance(event, Work):
            self._spawn(self._work(event))
        else:
            self._dialect.error(event.detail, event.request_id)

    async def _work(self, work: Work[Any]) -> None:
        """Run a dialect's job; hand its outcome back and handle what follows from it."""
        try:
            outcome = await work.job()
        except RequestFailed as exc:
            outcome = exc.detail
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            self._log().error("work_failed", error=message, exc_info=exc)
            outcome = ErrorDetail(code="server_error", message=message)
        for event in work.done(outcome):
            self._handle(event)
        await self._outbox.settle()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._group is not None
        task = self._group.create_task(coro)
        if self._tasks is None:
            self._tasks = []
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)
        return task

    def _has_room(self) -> bool:
        return len(self._running) < self._dialect.max_concurrent

    def _idle(self) -> bool:
        return not self._running

    def _start(self, request: Request, request_id: str | None) -> None:
        assert self._group is not None
        model = request.chat.model
        route = self._routes.route(model)
        if route is None:
            available = ", ".join(self._routes.models or ())
            detail = ErrorDetail(
                code="model_not_found",
                message=f"unknown model {model!r}: available models: {available}",
            )
            self._dialect.error(detail, request_id)
            if request_id is not None:
                self._dialect.release(request_id)
            return
        if self.grant is not None:
            # The key's models and quotas, in band: the session goes on.
            refusal = self.grant.admit(model)
            if refusal is not None:
                self._dialect.error(refusal, request_id)
                if request_id is not None:
                    self._dialect.release(request_id)
                return
        self._index += 1
        output = self._dialect.started(request_id)
        context = RequestContext(self.context, self._index, model, request_id)
        answer = Answer(context, route, self._loop.time(), output)
        self._running.append(answer)
        if request_id is not None:
            if self._by_id is None:
                self._by_id = {}
            self._by_id[request_id] = answer
        answer.task = self._group.create_task(self._answer(answer, request))

    def _cancel(self, request_id: str) -> None:
        answer = self._by_id.get(request_id) if self._by_id is not None else None
        if answer is not None and not answer.ended:
            # The terminal envelope goes out now; the task sends nothing more.
            answer.cancel("request_cancel")
            self._dialect.cancelled(request_id)
            self._forget(answer)
            return
        queued = self._channel.remove(request_id)
        if queued is not None:
            self._dialect.cancelled(request_id)
            self._dialect.release(request_id)
            route = self._routes.route(queued.request.chat.model)
            if route is not None:
                self._count(route, "cancelled", "request_cancel")
            return
        detail = ErrorDetail(
            code="unknown_request_id",
            message=f"no request {request_id!r} is queued or running",
        )
        self._dialect.error(detail, request_id)

    async def _answer(self, answer: Answer, request: Request) -> None:
        """Run one answer; every way it ends is accounted for in ``finally``."""
        context = answer.context
        outcome = "cancelled"
        speaker: asyncio.Task[None] | None = None
        try:
            # An output that speaks (a spoken Realtime response) works beside the
            # engine, in this answer's time: cancelling the answer cancels it.
            if answer.speaks:
                assert self._group is not None
                speak = answer.output.speak  # type: ignore[union-attr]
                speaker = self._group.create_task(speak(self._outbox.settle))
            # Every engine relays (load.py adapts the others): it writes from
            # its upstream's callbacks, or its answer's iterator, batch by batch.
            await answer.route.engine.relay(
                request, context, AnswerDelivery(self.write_answer, self._outbox, answer)
            )
            if speaker is not None:
                answer.output.text_over()  # type: ignore[union-attr]
                await speaker
                answer.answered()
            outcome = "completed"
        except RequestFailed as exc:
            answer.fail(exc.detail.code)
            self._dialect.error(exc.detail, context.request_id)
            self._log().info("request_failed", code=exc.detail.code, error=str(exc))
        except StreamEnded:
            raise SessionOver(Ending("stream_ended")) from None
        except (PeerGone, ClientTooSlow):
            raise
        except Exception as exc:
            raise self._engine_failed(answer, exc) from None
        finally:
            if speaker is not None and not speaker.done():
                speaker.cancel()  # its syntheses close their requests
            self._end(answer, outcome)

    def write_answer(self, answer: Answer, batch: Sequence[Envelope]) -> None:
        """Write an answer's envelopes through its output, noting the one that ends it
        (its :class:`~.delivery.AnswerDelivery` calls it)."""
        if answer.chunks == 0:
            self._metrics.first_chunk(self._loop.time() - answer.started)
        answer.chunks += len(batch)
        if self.grant is not None:
            for envelope in batch:
                answer.usage = usage_of(envelope) or answer.usage
        context, output = answer.context, answer.output
        if isinstance(output, Passthrough):
            for envelope in batch:
                if not context.finished and is_finish(envelope):
                    answer.engine_ended(envelope.event == "error")
                output.envelope(envelope)
        else:
            # Read once: what the envelope says goes to the output, and whether
            # it ends the answer comes back.
            for envelope in batch:
                if read_envelope(envelope, output) and not context.finished:
                    failed = envelope.event == "error"
                    if failed or not answer.speaks:
                        answer.engine_ended(failed)

    def _engine_failed(self, answer: Answer, exc: Exception) -> SessionOver:
        message = str(exc) or type(exc).__name__
        self._log().error("engine_failed", error=message, chunks=self._outbox.count, exc_info=exc)
        answer.fail("engine_error")
        if self._outbox.count:
            # Envelopes went out: the client also hears of it in band.
            detail = ErrorDetail(code="engine_error", message=message)
            self._dialect.error(detail, answer.context.request_id)
        for other in self._running:
            other.reason = "session_error"
        return SessionOver(Ending("engine_failed", message))

    def _end(self, answer: Answer, outcome: str) -> None:
        """Account for an answer that ended, and free its place."""
        self._forget(answer)
        if answer in self._running:
            self._running.remove(answer)
            self._channel.wake()  # a place is free for the next request
        outcome, reason = answer.outcome(outcome == "completed")
        self._count(answer.route, outcome, reason)
        metrics = self._metrics
        seconds = self._loop.time() - answer.started
        if self.grant is not None:
            self.grant.used(answer.context.model, answer.usage, outcome, seconds)
        metrics.answer_ended(seconds)
        metrics.sent(answer.chunks)
        self._counted += answer.chunks

    def _forget(self, answer: Answer) -> None:
        request_id = answer.context.request_id
        by_id = self._by_id
        if request_id is not None and by_id is not None and by_id.get(request_id) is answer:
            del by_id[request_id]
            self._dialect.release(request_id)

    def _count(self, route: Route, outcome: str, reason: str) -> None:
        self._metrics.answered(
            route.engine_name, route.model_label, outcome, reason, self._dialect.name
        )

    def _log(self) -> structlog.typing.FilteringBoundLogger:
        log: structlog.typing.FilteringBoundLogger = logger.bind(
            conn=self.context.session_id, peer=self.peer
        )
        return log
