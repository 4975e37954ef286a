"""Dialects: sans-I/O translators between a wire format and the session's events.

A dialect decodes client frames into :mod:`~realtime_daemon.events` (keeping
whatever per-session protocol state its wire has) and encodes what the
session tells it into frames, which it writes through the session's
:class:`~realtime_daemon.outbox.Outbox`. :mod:`.chat` is the chat-completion
dialect of ``/v1/realtime``, :mod:`.realtime` the OpenAI Realtime API's;
another wire is another module with the same shape.

The session calls, per answer: :meth:`Dialect.started`, then
:meth:`Dialect.chunk` for each envelope the engine yields, and ends it with
at most one of :meth:`Dialect.error` or :meth:`Dialect.cancelled`; then
:meth:`Dialect.release` once it is over, whichever way.
"""

from __future__ import annotations

from typing import Any, Protocol

from realtime_daemon.wire.chat import Envelope, ErrorDetail
from realtime_daemon.wire.events import Event

__all__ = ["RESUME_UNAVAILABLE", "Dialect", "FrameWriter", "Resumable", "resume_state"]

RESUME_UNAVAILABLE = (
    "resume is not available on this daemon (--resume-window 0, or --workers above 1)"
)
"""Why a ``resumable`` session is refused when the daemon offers no resume."""


class FrameWriter(Protocol):
    """Where a dialect writes its frames: the session's outbox, or a test's list."""

    def next_id(self) -> str:
        """The next frame's number, ``"1"``, ``"2"``, ...: the one place ids are given."""

    def write(self, payload: bytes) -> bool:
        """Send one encoded frame; whether the writer must settle before writing more."""


class Resumable(Protocol):
    """The session's resume switch, for a dialect whose client asks for it."""

    def enable_resume(self) -> str:
        """Make the session resumable; its resume token (the same until disabled)."""

    def disable_resume(self) -> None:
        """The session is no longer resumable."""


class Dialect(Protocol):
    """What the session and the transport need of a dialect."""

    @property
    def name(self) -> str:
        """The dialect's name, for metrics (``chat``, ``openai-realtime``)."""

    @property
    def max_concurrent(self) -> int:
        """How many answers the session may run at once."""

    def opened(self) -> None:
        """The session starts: send what the client gets before it says anything."""

    def receive(self, frame: bytes) -> Event:
        """Decode one client Text frame (valid UTF-8).

        Raises:
            FrameError: a frame that ends the connection (1007).
        """

    def refused(self, detail: ErrorDetail) -> Event:
        """The event for a frame the transport refused unread (over the rate limit)."""

    def binary(self) -> Event | None:
        """A Binary frame: what it becomes, or None to close the connection (1003)."""

    def drain(self) -> None:
        """The daemon stops: refuse new requests (``shutting_down``), still answer
        control messages, and say so if the wire has a way to."""

    def started(self, request_id: str | None) -> None:
        """An answer starts (its engine is about to run)."""

    def chunk(self, envelope: Envelope, request_id: str | None) -> bool:
        """Send one envelope of an answer; whether to ``await outbox.settle()`` now."""

    def error(self, detail: ErrorDetail, request_id: str | None = None) -> None:
        """Send an error: of the answer ``request_id`` when it names one that runs
        (which then ends), else of the session."""

    def cancelled(self, request_id: str) -> None:
        """Send the end of an answer cut by a cancel."""

    def release(self, request_id: str) -> None:
        """``request_id``'s answer is over (answered, cut, failed or dropped): its id
        is free again, and whatever of it is still open on the wire is closed."""

    def reply(self, payload: object) -> None:
        """Send the answer to a frame the dialect handled itself (:class:`~.events.Reply`)."""


def resume_state(session: dict[str, Any], resume: Resumable | None, resumable: bool) -> None:
    """Switch resume as the client asked, and show it in ``session`` (the object of
    ``session.updated``): ``resumable`` and ``resume_token`` while it is on."""
    if resume is None:
        return
    if resumable:
        session["resumable"] = True
        session["resume_token"] = resume.enable_resume()
    else:
        resume.disable_resume()
