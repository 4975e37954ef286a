"""Session events: what a dialect makes of a client frame, for the session to act on.

No I/O and no wire format here: a dialect (:mod:`realtime_daemon.dialects`)
turns frames into these, the session (:mod:`realtime_daemon.session`) acts on
them and tells the dialect what to send back. The other direction, what an
engine's answer says, is :mod:`.chunks`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from realtime_daemon.wire.chat import ErrorDetail, Request

__all__ = [
    "Cancel",
    "Event",
    "Events",
    "Refuse",
    "Reply",
    "Submit",
    "Work",
    "is_request",
    "needs_room",
]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Submit:
    """A request to answer, with the client's id for it (if any)."""

    request: Request
    request_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Cancel:
    """Stop the answer of ``request_id``, or drop it from the queue."""

    request_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """A frame the dialect handled itself (a settings change, a conversation edit, a
    refusal): the session calls ``send`` in its turn, so that the answer is
    written in order with everything else.

    Attributes:
        send: writes the answer (a dialect's bound method, or a partial of one).
        in_order: the reply keeps its place behind the requests that came before
            it (a wire that answers every event in arrival order, as the Realtime
            API does); it never waits for room to run, as a request does.
    """

    send: Callable[[], None]
    in_order: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Refuse:
    """A frame refused in band: an error envelope, and the session goes on.

    Attributes:
        detail: the error's code and message.
        request_id: the id the frame named, if any.
        in_order: the frame was a request: its refusal keeps its place among
            the answers (a client counting answers sees it in order).
    """

    detail: ErrorDetail
    request_id: str | None = None
    in_order: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Work(Generic[T]):
    """I/O a dialect needs done (a transcription, a store lookup), which it cannot do
    itself: it has no loop.

    The session runs ``job`` as one of its tasks, beside the answers, and hands
    ``done`` what the job returned, or an :class:`ErrorDetail` when it raised
    (code ``server_error``, logged with its traceback: a job should return its
    expected failures as values). The events ``done`` returns are then handled in
    order, as if they had come from the client, except that a request among them
    starts at once: the dialect bounds what it asks for this way. A job still
    running when the session ends is cancelled, and ``done`` is not called.

    Attributes:
        job: makes the awaitable that does the work (called once, by the session).
        done: takes the outcome; returns the events that follow from it.
        in_order: the work starts in its place among the replies, behind the
            events that came before it.
    """

    job: Callable[[], Awaitable[T]]
    done: Callable[[T | ErrorDetail], Sequence[Event]]
    in_order: bool = True


Event = Submit | Cancel | Reply | Refuse | Work[Any]
"""Everything a frame can become; requests (and their refusals) keep their order."""

Events = Event | tuple[Event, ...]
"""What a dialect makes of one frame: an event, or several, in order."""


def is_request(event: Event) -> bool:
    """Whether ``event`` takes a place in the request queue (a request, its refusal, or
    a reply in order)."""
    return isinstance(event, Submit) or (
        isinstance(event, Refuse | Reply | Work) and event.in_order
    )


def needs_room(event: Event) -> bool:
    """Whether ``event``, at the head of the request queue, waits until the session may
    start another answer: a request, or the refusal standing in for one."""
    return not isinstance(event, Reply | Work)
