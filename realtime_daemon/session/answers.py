"""An answer in progress, and how a session ends: the session's bookkeeping types."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Literal

from realtime_daemon.engines.base import RequestContext
from realtime_daemon.engines.routes import Route
from realtime_daemon.wire.chat import Envelope

__all__ = ["Answer", "Ending", "EndingKind", "SessionOver"]

# Cancel reasons whose terminal envelope the session sent itself, cutting the answer.
_CUT = frozenset({"shutdown", "request_cancel"})

EndingKind = Literal[
    "complete",  # the channel was closed (a drain) and every answer finished
    "client_gone",  # the reader ended: the client closed, vanished or broke the protocol
    "peer_gone",  # a write found the connection gone
    "too_slow",  # the client read nothing for send_timeout; the connection was dropped
    "engine_failed",  # an engine raised something other than RequestFailed
    "stream_ended",  # a bidirectional engine's generate returned
    "shutdown_cut",  # the drain deadline cut answers
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


class Answer:
    """One request being answered."""

    __slots__ = ("chunks", "context", "error", "put", "reason", "route", "started", "task")

    def __init__(
        self,
        context: RequestContext,
        route: Route,
        started: float,
        put: Callable[[Envelope], None],
    ) -> None:
        self.context = context
        self.put = put  # writes one envelope through the dialect
        self.route = route
        self.started = started
        self.chunks = 0
        self.error: str | None = None  # the error code, once an error envelope went out
        self.reason = "client_gone"  # why, if it is cancelled
        self.task: asyncio.Task[None] | None = None

    def cancel(self, reason: str) -> None:
        """Stop the answer's task; ``reason`` is the metric's, if it ends cancelled."""
        self.reason = reason
        self.context.stop()
        if self.task is not None:
            self.task.cancel()

    def outcome(self, ran_to_end: bool) -> tuple[str, str]:
        """The metric's outcome and reason, once the answer's task has ended."""
        if self.error is not None:
            return "error", self.error
        if ran_to_end:
            return "completed", ""
        if self.context.finished and self.reason not in _CUT:
            # Its last chunk went out before it was cut: answered in full.
            return "completed", ""
        return "cancelled", self.reason
