"""An answer in progress, and how a session ends: the session's bookkeeping types."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import Literal, Protocol

from realtime_daemon.dialects import AnswerOutput
from realtime_daemon.engines.base import RequestContext
from realtime_daemon.engines.routes import Route
from realtime_daemon.wire.chat import Usage

__all__ = [
    "Answer",
    "AnswerState",
    "Ending",
    "EndingKind",
    "SessionObserver",
    "SessionOver",
]

EndingKind = Literal[
    "complete",  # the channel was closed (a drain) and every answer finished
    "client_gone",  # the reader ended: the client closed, vanished or broke the protocol
    "peer_gone",  # a write found the connection gone
    "too_slow",  # the client read nothing for send_timeout; the connection was dropped
    "engine_failed",  # an engine raised something other than RequestFailed
    "stream_ended",  # a bidirectional engine's generate returned
    "shutdown_cut",  # the drain deadline cut answers
    "revoked",  # the session's key was removed or disabled (message: why)
    "expired",  # the connection reached --max-session-duration
]


@dataclasses.dataclass(frozen=True, slots=True)
class Ending:
    """Why a session ended; ``message`` says what an engine failure was."""

    kind: EndingKind
    message: str = ""


class SessionOver(Exception):
    """Ends the session from inside an answer."""

    def __init__(self, ending: Ending) -> None:
        super().__init__(ending.kind)
        self.ending = ending


class AnswerState(enum.Enum):
    """Where an answer is; every change of it is an :class:`Answer` method."""

    RUNNING = "running"  # its engine runs; nothing that ends it went out yet
    ANSWERED = "answered"  # its last chunk went out (a finish, or the engine's error)
    CANCELLED = "cancelled"  # cut: the session wrote its end, or nobody reads it
    FAILED = "failed"  # an error ended it (the request's, or the engine's)


class Answer:
    """One request being answered, and its state.

    Transitions: RUNNING to ANSWERED (:meth:`answered`), to CANCELLED
    (:meth:`cancel` while RUNNING), to FAILED (:meth:`fail`, also from
    ANSWERED when the engine fails after its last chunk). :meth:`cancel` of
    an ANSWERED answer stops only its tail (e.g. ``[DONE]``): it stays
    answered. The metric's outcome is read off the state (:meth:`outcome`).
    """

    __slots__ = (
        "chunks",
        "context",
        "error",
        "output",
        "reason",
        "route",
        "speaks",
        "started",
        "state",
        "task",
        "usage",
    )

    def __init__(
        self,
        context: RequestContext,
        route: Route,
        started: float,
        output: AnswerOutput,
    ) -> None:
        self.context = context
        self.output = output  # where the dialect writes it
        self.route = route
        self.started = started
        self.chunks = 0
        self.usage: Usage | None = None  # the engine's, when a key counts it
        self.state = AnswerState.RUNNING
        self.error = ""  # FAILED: the error's code
        self.reason = "client_gone"  # CANCELLED: why (the metric's reason)
        self.task: asyncio.Task[None] | None = None
        # An output that speaks (a spoken Realtime response) is not over at the
        # engine's finish: its speech is still to come, and may still be cut.
        self.speaks = hasattr(output, "speak")

    @property
    def ended(self) -> bool:
        """Whether what ends the answer on the wire went out (by the session, or by
        an engine that marks its context finished itself; a spoken answer ends
        when its speech does, whatever its engine marks)."""
        if self.speaks:
            return self.state is not AnswerState.RUNNING
        return self.state is not AnswerState.RUNNING or self.context.finished

    def answered(self) -> None:
        """Its last chunk went out."""
        if self.state is AnswerState.RUNNING:
            self.state = AnswerState.ANSWERED
            self.context.finished = True

    def engine_ended(self, failed: bool) -> None:
        """An envelope of the engine ended it: an error (FAILED), else a finish (ANSWERED)."""
        if failed:
            self.fail("request_failed")
        else:
            self.answered()

    def fail(self, code: str) -> None:
        """An error ended it (``code`` is the metric's reason)."""
        self.state = AnswerState.FAILED
        self.error = code
        self.context.finished = True

    def cancel(self, reason: str) -> None:
        """Stop the answer's task; unless it was already answered (or failed), it ends
        cancelled for ``reason``."""
        if not self.ended:
            self.state = AnswerState.CANCELLED
            self.reason = reason
        self.context.stop()
        if self.task is not None:
            self.task.cancel()

    def outcome(self, ran_to_end: bool) -> tuple[str, str]:
        """The metric's outcome and reason, once the answer's task has ended."""
        state = self.state
        if state is AnswerState.FAILED:
            return "error", self.error
        if state is AnswerState.CANCELLED:
            return "cancelled", self.reason
        if ran_to_end or self.ended:
            return "completed", ""
        return "cancelled", self.reason


class SessionObserver(Protocol):
    """Told of a session's answers, e.g. for metrics (the server's ``Metrics``)."""

    def first_chunk(self, seconds: float) -> None:
        """An answer's first envelope was written, ``seconds`` after it started."""

    def answer_ended(self, seconds: float) -> None:
        """An answer ended, whichever way, ``seconds`` after it started."""

    def answered(self, engine: str, model: str, outcome: str, reason: str, dialect: str) -> None:
        """A request was answered (or cancelled, or failed), with its labels."""

    def sent(self, envelopes: int) -> None:
        """``envelopes`` more envelopes were written to the client."""
