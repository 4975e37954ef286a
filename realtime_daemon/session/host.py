"""The host of a session across WebSockets: attached, held, ended.

A session starts on its first connection and, when it is resumable
(:mod:`.resume`), outlives it: a connection lost without a Close frame, or
taken over by a resuming upgrade, leaves the session *held* for the resume
window, its answers going on into the replay buffer; a resume attaches it
to the new connection, which first gets what it missed. The states and
their moves, in one place (:data:`MOVES`, :meth:`Host._move`), as
websockets' ``protocol.State``:

- ATTACHED -> HELD: the connection was lost, or a resume takes the session over;
- HELD -> ATTACHED: resumed on a new connection;
- ATTACHED or HELD -> ENDED: the session ended (the client closed, the
  window passed, an engine failed, the drain).

Entering HELD starts the expiry timer; leaving it stops the timer. A
connection is a :class:`Link` (the transport's one WebSocket); this module
is plain asyncio.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Protocol

import structlog

from realtime_daemon.dialects.registry import DialectFactory
from realtime_daemon.engines.base import Context
from realtime_daemon.engines.routes import Routes
from realtime_daemon.session.answers import Ending
from realtime_daemon.session.channel import ChannelObserver, RequestChannel
from realtime_daemon.session.outbox import Outbox, Sink
from realtime_daemon.session.resume import Resumes
from realtime_daemon.session.scheduler import Session, SessionObserver
from realtime_daemon.wire.grants import Grant

__all__ = [
    "MOVES",
    "Host",
    "HostObserver",
    "HostState",
    "Link",
    "SessionEnded",
]

logger = structlog.get_logger("realtime_daemon")


class HostState(enum.IntEnum):
    """Where a session is: on a connection, held without one, or over."""

    ATTACHED = 1
    HELD = 2
    ENDED = 3


MOVES: dict[HostState, frozenset[HostState]] = {
    HostState.ATTACHED: frozenset({HostState.HELD, HostState.ENDED}),
    HostState.HELD: frozenset({HostState.ATTACHED, HostState.ENDED}),
    HostState.ENDED: frozenset(),
}
"""The states each state may move to."""


class SessionEnded(Exception):
    """The session ended before a resume could attach it."""


class HostObserver(ChannelObserver, SessionObserver, Protocol):
    """Told of a session's channel, answers and resumes (the server's ``Metrics``)."""

    def held(self, change: int) -> None:
        """Sessions held without a connection changed by ``change`` (+1, -1)."""

    def resume_expired(self) -> None:
        """A held session ended: no resume came within the window."""

    def resumed(self, replayed: int) -> None:
        """A session was resumed on a new connection, ``replayed`` envelopes replayed."""


class Link(Protocol):
    """One connection of a session, as its host drives it (the transport's WebSocket)."""

    @property
    def sink(self) -> Sink:
        """Where the session's frames go while it is on this connection."""

    def start(self, host: Host) -> None:
        """Read the connection's frames into ``host.channel``; tell
        :meth:`Host.reading_ended` when reading ends by itself."""

    async def stop(self) -> None:
        """Stop reading (the connection stays open), and wait until it stopped."""

    def ended(self, ending: Ending, draining: bool) -> None:
        """The session ended while on this connection (reading stopped): close it."""

    def dropped(self, taken_over: bool) -> None:
        """The session let go of this connection: it was lost, or ``taken_over`` by a
        resume on another one (close it saying so)."""


class Host:
    """A session across its connections: its state, expiry, resume token, and drain.

    Args:
        link: the session's first connection.
        routes: which engine answers which model.
        dialect: makes the wire dialect the client speaks.
        queue_size: the request channel's bound.
        session_id: the session's fresh id.
        peer: the client's address, for the log.
        observer: told of the channel, answers and resumes.
        send_timeout: how long a lagging client may keep a writer waiting.
        resumes: the app's resumable sessions; None when resume is off.
        identity: the client's identity (:func:`~.resume.identity_of`).
        grant: the client's key's models and quotas; None without keys.
        max_duration: seconds the session may last (then the dialect says so and it
            ends); None: no limit.
    """

    # Slots, and no bound logger until one is needed: thousands of idle
    # sessions are the common case.
    __slots__ = (
        "_cut",
        "_expiry",
        "_limit",
        "_link",
        "_max_duration",
        "_observer",
        "_resumes",
        "channel",
        "dialect",
        "draining",
        "identity",
        "outbox",
        "peer",
        "session",
        "state",
        "token",
    )

    def __init__(
        self,
        link: Link,
        routes: Routes,
        dialect: DialectFactory,
        *,
        queue_size: int,
        session_id: str,
        peer: str,
        observer: HostObserver,
        send_timeout: float,
        resumes: Resumes | None = None,
        identity: bytes | None = None,
        grant: Grant | None = None,
        max_duration: float | None = None,
    ) -> None:
        self.state = HostState.ATTACHED
        self._max_duration = max_duration
        self._limit: asyncio.TimerHandle | None = None  # --max-session-duration
        self._link: Link | None = link  # the connection to close when the session ends
        self._observer = observer
        self._resumes = resumes
        self._expiry: asyncio.TimerHandle | None = None  # while HELD
        self._cut: asyncio.TimerHandle | None = None  # the drain's deadline
        self.identity = identity
        self.token: str | None = None  # while resumable
        self.draining = False
        self.peer = peer
        self.outbox = Outbox(link.sink, send_timeout)
        offer = self if resumes is not None and resumes.unavailable is None else None
        self.dialect = speaks = dialect(self.outbox, session_id, offer)
        self.channel = RequestChannel(queue_size, speaks.receive, observer=observer)
        self.session = Session(
            routes, speaks, self.channel, self.outbox, Context(session_id), observer, peer, grant
        )

    @property
    def session_id(self) -> str:
        return self.session.context.session_id

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger:
        """A logger bound to this session's id and peer."""
        log: structlog.typing.FilteringBoundLogger = logger.bind(
            conn=self.session_id, peer=self.peer
        )
        return log

    def busy(self) -> bool:
        """Whether the session has work (an idle timeout waits for it)."""
        return self.session.busy

    def _move(self, state: HostState) -> None:
        """Move to ``state``: the one place the state changes, and the expiry timer with it.

        Raises:
            RuntimeError: ``state`` cannot follow the current one.
        """
        if state not in MOVES[self.state]:
            raise RuntimeError(f"a session cannot go from {self.state.name} to {state.name}")
        if self.state is HostState.HELD:
            assert self._expiry is not None
            self._expiry.cancel()
            self._expiry = None
            self._observer.held(-1)
        if state is HostState.HELD:
            assert self._resumes is not None
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(self._resumes.window, self._expire)
            self._observer.held(+1)
        self.state = state

    async def run(self) -> None:
        """Serve the session from its first connection until it ends; the connection it
        is on then, if any, is told how it ended."""
        assert self._link is not None
        self._link.start(self)
        if self._max_duration is not None:
            loop = asyncio.get_running_loop()
            self._limit = loop.call_later(self._max_duration, self._time_up)
        try:
            ending = await self.session.run()
        finally:
            if self._limit is not None:
                self._limit.cancel()
            if self.state is not HostState.ENDED:
                self._move(HostState.ENDED)
            if self._cut is not None:
                self._cut.cancel()
            self.disable_resume()
            link, self._link = self._link, None
            if link is not None:
                await link.stop()
        if link is not None:
            link.ended(ending, self.draining)

    def reading_ended(self, link: Link, lost: bool) -> None:
        """Reading ``link`` ended by itself; ``lost``: without a Close frame.

        A resumable session whose connection was lost is held; otherwise the
        session ends.
        """
        if link is not self._link or self.state is not HostState.ATTACHED:
            return
        if lost and self.token is not None and not self.draining:
            self._hold(taken_over=False)
        else:
            self._end()

    def _hold(self, taken_over: bool) -> None:
        """Let go of the connection and hold the session for the resume window."""
        link, self._link = self._link, None
        assert link is not None and self._resumes is not None
        link.dropped(taken_over)
        self.outbox.detach()
        self._move(HostState.HELD)
        self.log.info("session_held", window_s=self._resumes.window, envelopes=self.outbox.count)

    def _end(self) -> None:
        """End the session now: its queue is dropped, and writers waiting for a
        connection to come back (a held session's) give up."""
        if self.state is not HostState.ENDED:
            self._move(HostState.ENDED)
        self.outbox.give_up()
        self.channel.abort()

    def _time_up(self) -> None:
        """The session reached its time limit: the client hears why, then it ends."""
        self.log.info("session_time_limit", seconds=self._max_duration)
        self.dialect.expired()
        self.session.expire()

    def _expire(self) -> None:
        """The window passed without a resume: the session ends (engines stopped)."""
        self.disable_resume()
        self._observer.resume_expired()
        self.log.info("session_expired")
        self._end()

    def drain(self, deadline: float) -> None:
        """Take no new requests; let answers in progress finish until ``deadline``.

        The reader goes on reading: pings and pongs, control messages and
        the client's Close are still handled, and a request that arrives
        now is refused in band (``shutting_down``).

        Args:
            deadline: event-loop time after which unfinished answers are cut.
        """
        self.draining = True
        self.dialect.drain()
        self.channel.drain()
        self._cut = asyncio.get_running_loop().call_at(deadline, self.session.cut)

    def revoke(self, reason: str) -> None:
        """The session's key was removed or disabled: end the session now, held or
        not; its connection closes 1008 with ``reason``."""
        if self.state is HostState.ENDED:
            return
        self.disable_resume()
        self.session.revoke(reason)
        self._end()

    # -- resume (see resume.py) -------------------------------------------------------

    def enable_resume(self) -> str:
        """Make the session resumable (the dialect asks, for its client); its token."""
        assert self._resumes is not None
        if self.token is None:
            self.token = self._resumes.add(self)
            self.outbox.keep(self._resumes.buffer)
        return self.token

    def disable_resume(self) -> None:
        """The session is no longer resumable: its token is forgotten."""
        if self._resumes is not None:
            self._resumes.forget(self.token)
        self.token = None

    def buffered(self) -> int:
        """Bytes of envelopes kept for replay."""
        replay = self.outbox.replay
        return replay.bytes if replay is not None else 0

    def check_after(self, after: int) -> None:
        """Raises Gap: what came after envelope ``after`` is not all held."""
        assert self.outbox.replay is not None
        self.outbox.replay.after(after, self.outbox.count)

    def take_over(self) -> None:
        """A resume is coming: let go of the connection the session is on, if any."""
        if self.state is HostState.ATTACHED:
            self._hold(taken_over=True)

    def resume(self, link: Link, after: int) -> int:
        """Attach the held session to ``link``, first replaying what came after
        envelope ``after``; how many envelopes were replayed.

        Raises:
            SessionEnded: it ended while the upgrade was written (the window
                passed, the drain).
            Gap: the envelopes went while the upgrade was written (the old
                connection took them): nothing to resume from.
        """
        if self.state is HostState.ENDED:
            raise SessionEnded
        self.take_over()  # another resume came first: the latest one wins
        replayed = self.outbox.attach(link.sink, after)
        self._link = link
        self._move(HostState.ATTACHED)
        self._observer.resumed(replayed)
        self.log.info("session_resumed", after=after, replayed=replayed)
        link.start(self)
        return replayed
