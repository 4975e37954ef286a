"""Dialects: sans-I/O translators between a wire format and the session's events.

A dialect decodes client frames into :mod:`~realtime_daemon.wire.events`
(keeping whatever per-session protocol state its wire has), and turns what
the session tells it into frames, which it writes through an injected
:class:`FrameWriter`: the session's outbox, or a list in a test. The writer
numbers every frame (the only place ids are given), so a dialect is built
and driven without an event loop or a socket. Dialects may import
:mod:`~realtime_daemon.wire` and :mod:`~realtime_daemon.config` only.

:mod:`.chat` is the chat-completion dialect of ``/v1/realtime``,
:mod:`.realtime` the OpenAI Realtime API's, :mod:`.responses` the OpenAI
Responses API's (``/v1/responses``); :mod:`.registry` names them with what
selects each. Another wire is another module plus a registry entry.

The session calls, per answer: :meth:`Dialect.started`, which gives the
answer's output, either a :class:`Passthrough` (the chat dialect: the
engine's envelopes as they are, its one fast path) or an
:class:`~realtime_daemon.wire.chunks.AnswerEvents` (everything else: the
engine's chunks read once, by the session, into neutral events); it ends the
answer with at most one of :meth:`Dialect.error` or
:meth:`Dialect.cancelled`; then :meth:`Dialect.release`, whichever way it
ended.
"""

from __future__ import annotations

from typing import Any, Protocol

from realtime_daemon.wire.chat import Envelope, ErrorDetail
from realtime_daemon.wire.chunks import AnswerEvents
from realtime_daemon.wire.events import Event, Events

__all__ = [
    "RESUME_UNAVAILABLE",
    "AnswerOutput",
    "Dialect",
    "FrameWriter",
    "Passthrough",
    "Resumable",
    "Shared",
    "resume_state",
]

RESUME_UNAVAILABLE = (
    "resume is not available on this daemon (--resume-window 0, or --workers above 1)"
)
"""Why a ``resumable`` session is refused when the daemon offers no resume."""


class FrameWriter(Protocol):
    """Where a dialect writes its frames: the session's outbox, or a test's list."""

    def write(self, head: bytes, tail: bytes) -> None:
        """Send the frame ``head + <its number> + tail``, after the frames written before.

        The writer numbers frames 1, 2, 3, ... in the order they are written:
        a dialect says where its id goes (``"id":"``, ``"event_id":"event_``),
        never what it is.
        """


class Passthrough:
    """An answer's output that takes the engine's envelopes as they are (a base
    class, so that the session tells it from :class:`AnswerEvents` at a glance)."""

    __slots__ = ()

    def envelope(self, envelope: Envelope) -> None:
        """Write one envelope of the answer."""
        raise NotImplementedError


AnswerOutput = Passthrough | AnswerEvents
"""Where the session writes an answer's output (see :meth:`Dialect.started`)."""


class Resumable(Protocol):
    """The session's resume switch, for a dialect whose client asks for it."""

    def enable_resume(self) -> str:
        """Make the session resumable; its resume token (the same until disabled)."""

    def disable_resume(self) -> None:
        """The session is no longer resumable."""


class Shared(Protocol):
    """What a dialect's connections share in one daemon (the Responses store): made
    once, by the server, from the settings (:attr:`.registry.DialectSpec.shared`),
    and closed when the daemon stops."""

    @property
    def up(self) -> bool:
        """Whether it works (a metric shows it)."""

    async def aclose(self) -> None:
        """Let go of what it holds (connections, tasks)."""


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

    def receive(self, frame: bytes) -> Events:
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

    def expired(self) -> None:
        """The connection reached ``--max-session-duration``: say so if the wire has a
        way to (the session then ends, and the connection closes 1001)."""

    def started(self, request_id: str | None) -> AnswerOutput:
        """An answer starts (its engine is about to run): where its output goes."""

    def error(self, detail: ErrorDetail, request_id: str | None = None) -> None:
        """Send an error: of the answer ``request_id`` when it names one that runs
        (which then ends), else of the session."""

    def cancelled(self, request_id: str) -> None:
        """Send the end of an answer cut by a cancel."""

    def release(self, request_id: str) -> None:
        """``request_id``'s answer is over (answered, cut, failed or dropped): its id
        is free again, and whatever of it is still open on the wire is closed."""


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
