"""A session's connections: its WebSocket (and, resumed, the next), the session, one close.

The reader (:func:`~.reader.read_frames`, a task per WebSocket) is the only
caller of ``ws.receive()``: it puts frames into the bounded
:class:`~.channel.RequestChannel` and returns the close that ended reading.
The session (:class:`~.session.Session`, in the first handler's own task)
answers what the channel gives, writing envelopes through the outbox and its
coalescing :class:`~.output.Output`. Reader and session are siblings: when
the reader ends it aborts the channel, which ends the session (unless the
session is resumable and the connection was lost: then it is held, see
:mod:`.resume`); when the session ends the reader is cancelled (aiohttp
keeps the connection open when ``receive()`` is cancelled).
:func:`~.closes.choose_close` then picks the close from how each ended, and
``ws.close()`` is called once: a second racing close would send the default
code instead (aiohttp issue #3448).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal, Protocol

import structlog
from aiohttp import WSCloseCode, web
from aiohttp.base_protocol import BaseProtocol

from realtime_daemon.dialects.registry import DialectFactory
from realtime_daemon.engines.base import Context
from realtime_daemon.engines.routes import Routes
from realtime_daemon.session.channel import ChannelObserver, RequestChannel
from realtime_daemon.session.outbox import Outbox
from realtime_daemon.session.replay import Gap
from realtime_daemon.session.resume import Resumes
from realtime_daemon.session.scheduler import Session, SessionObserver
from realtime_daemon.transport.aiohttp_private import stop_heartbeat
from realtime_daemon.transport.closes import (
    CLOSE_TIMEOUT,
    TAKEN_OVER,
    Close,
    choose_close,
    close_reason,
)
from realtime_daemon.transport.output import Output
from realtime_daemon.transport.reader import Limits, read_frames

__all__ = ["Attachment", "Connection", "ConnectionObserver"]

logger = structlog.get_logger("realtime_daemon")

_ENDED = Close(WSCloseCode.OK, "session ended")


class ConnectionObserver(ChannelObserver, SessionObserver, Protocol):
    """Told of a connection's channel, answers and resumes (the server's ``Metrics``)."""

    def held(self, change: int) -> None:
        """Sessions held without a connection changed by ``change`` (+1, -1)."""

    def resume_expired(self) -> None:
        """A held session ended: no resume came within the window."""

    def resumed(self, replayed: int) -> None:
        """A session was resumed on a new connection, ``replayed`` envelopes replayed."""


class Attachment:
    """One WebSocket of a session: its reader, its output, how it was let go.

    A session is on one attachment at a time; a resumable session outlives
    its attachment (lost without a Close frame) and takes a new one on resume.
    """

    __slots__ = ("closed", "lost", "output", "reader", "ws")

    def __init__(
        self,
        ws: web.WebSocketResponse[Literal[False]],
        transport: asyncio.Transport | None,
        protocol: BaseProtocol,
    ) -> None:
        self.ws = ws
        self.output = Output(transport, protocol)
        self.reader: asyncio.Task[Close] | None = None
        self.lost: Close | None = None  # set when the session let go of it
        self.closed: asyncio.Future[Close] | None = None  # a resumed one's handler waits


class Connection:
    """The session of a WebSocket: its reader, the session, and one close.

    Args:
        ws: the prepared WebSocket, text frames undecoded.
        routes: which engine answers which model.
        dialect: makes the wire dialect the client speaks.
        queue_size: the request channel's bound.
        session_id: the fresh id of this connection.
        peer: the client's address, for the log.
        metrics: told of the channel, answers and resumes.
        limits: the per-connection limits.
        transport: the connection's transport: frames are written to it.
        protocol: aiohttp's protocol of the connection, for its drain.
        resumes: the app's resumable sessions; None when resume is off.
        identity: the client's identity (:func:`~.resume.identity_of`).
    """

    # Slots, and no bound logger until one is needed: thousands of idle
    # connections are the common case.
    __slots__ = (
        "_attached",
        "_cut",
        "_dialect",
        "_draining",
        "_ended",
        "_expiry",
        "_first",
        "_limits",
        "_metrics",
        "_resumes",
        "channel",
        "identity",
        "outbox",
        "peer",
        "resume_token",
        "session",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse[Literal[False]],
        routes: Routes,
        dialect: DialectFactory,
        *,
        queue_size: int,
        session_id: str,
        peer: str,
        metrics: ConnectionObserver,
        limits: Limits,
        transport: asyncio.Transport | None,
        protocol: BaseProtocol,
        resumes: Resumes | None = None,
        identity: bytes | None = None,
    ) -> None:
        self._limits = limits
        self._metrics = metrics
        self._first: Attachment = Attachment(ws, transport, protocol)
        self._attached: Attachment | None = self._first
        self.outbox = Outbox(self._first.output, limits.send_timeout)
        self._resumes = resumes
        self.identity = identity
        self.resume_token: str | None = None
        offer = self if resumes is not None and resumes.unavailable is None else None
        self._dialect = speaks = dialect(self.outbox, session_id, offer)
        self.channel = RequestChannel(queue_size, speaks.receive, observer=metrics)
        self.session = Session(
            routes, speaks, self.channel, self.outbox, Context(session_id), metrics, peer
        )
        self.peer = peer
        self._draining = False
        self._ended = False
        self._cut: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None

    @property
    def session_id(self) -> str:
        return self.session.context.session_id

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger:
        """A logger bound to this connection's id and peer."""
        log: structlog.typing.FilteringBoundLogger = logger.bind(
            conn=self.session_id, peer=self.peer
        )
        return log

    async def run(self) -> Close:
        """Serve the session until it ends; return how its first connection ended."""
        first = self._first
        self._start_reader(first)
        try:
            ending = await self.session.run()
        finally:
            self._ended = True
            if self._cut is not None:
                self._cut.cancel()
            if self._expiry is not None:  # held when it ended (a drain, an engine failure)
                self._expiry.cancel()
                self._metrics.held(-1)
            self.disable_resume()
            current = self._attached
            reader = current.reader if current is not None else None
            if reader is not None and not reader.done():
                reader.cancel()
                await asyncio.wait((reader,))
        current = self._attached
        if current is not None:
            assert current.reader is not None
            read = None if current.reader.cancelled() else current.reader.result()
            close = choose_close(read, ending, draining=self._draining)
            if current is first:
                return await self._close(first, close)
            assert current.closed is not None
            current.closed.set_result(close)  # its own handler closes it
        assert first.lost is not None
        return await self._close(first, first.lost)

    def _start_reader(self, attachment: Attachment) -> None:
        # The reader is a task the connection owns (not a TaskGroup's: an
        # idle connection's memory counts); it is cancelled and awaited in run.
        reader = attachment.reader = asyncio.create_task(
            read_frames(attachment.ws, self.channel, self._dialect, self._limits, self._busy)
        )
        reader.add_done_callback(lambda task: self._reader_done(attachment, task))

    def _busy(self) -> bool:
        return self.session.busy

    def _reader_done(self, attachment: Attachment, reader: asyncio.Task[Close]) -> None:
        """Reading ended by itself: the session ends, or is held if it is resumable and
        the connection was lost (no Close frame)."""
        if reader.cancelled() or attachment is not self._attached:
            return
        read = reader.result()
        lost = read.sent and read.code == WSCloseCode.ABNORMAL_CLOSURE
        if lost and self.resume_token is not None and not self._draining:
            self._let_go(attachment, read)
        else:
            self._end()

    def _end(self) -> None:
        """End the session now: its queue is dropped, and writers waiting for a
        connection to come back (a resumable session's) give up."""
        self.outbox.give_up()
        self.channel.abort()

    def drain(self, deadline: float) -> None:
        """Take no new requests; let answers in progress finish until ``deadline``.

        The reader goes on reading: pings and pongs, control messages and
        the client's Close are still handled, and a request that arrives
        now is refused in band (``shutting_down``).

        Args:
            deadline: event-loop time after which unfinished answers are cut.
        """
        self._draining = True
        self._dialect.drain()
        self.channel.drain()
        self._cut = asyncio.get_running_loop().call_at(deadline, self.session.cut)

    # -- resume (see resume.py) ---------------------------------------------------------

    def enable_resume(self) -> str:
        """Make the session resumable (the dialect asks, for its client); its token."""
        assert self._resumes is not None
        if self.resume_token is None:
            self.resume_token = self._resumes.add(self)
            self.outbox.keep(self._resumes.buffer)
        return self.resume_token

    def disable_resume(self) -> None:
        """The session is no longer resumable: its token is forgotten."""
        if self._resumes is not None:
            self._resumes.forget(self.resume_token)
        self.resume_token = None

    def buffered(self) -> int:
        """Bytes of envelopes kept for replay."""
        replay = self.outbox.replay
        return replay.bytes if replay is not None else 0

    def check_after(self, after: int) -> None:
        """Raises Gap: what came after envelope ``after`` is not all held."""
        assert self.outbox.replay is not None
        self.outbox.replay.after(after, self.outbox.count)

    def take_over(self) -> None:
        """A resume is coming: drop the connection the session is on, if any."""
        current = self._attached
        if current is not None:
            if current.reader is not None:
                current.reader.cancel()
            current.output.abort()
            self._let_go(current, TAKEN_OVER)

    def _let_go(self, attachment: Attachment, close: Close) -> None:
        """Hold the session without ``attachment`` for the resume window."""
        attachment.lost = close
        if attachment.closed is not None:
            attachment.closed.set_result(close)
        self._attached = None
        self.outbox.detach()
        assert self._resumes is not None
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(self._resumes.window, self._expire)
        self._metrics.held(+1)
        self.log.info("session_held", window_s=self._resumes.window, envelopes=self.outbox.count)

    def _expire(self) -> None:
        """The window passed without a resume: the session ends (engines stopped)."""
        self._expiry = None
        self.disable_resume()
        self._metrics.held(-1)
        self._metrics.resume_expired()
        self.log.info("session_expired")
        self._end()

    async def resume(
        self,
        ws: web.WebSocketResponse[Literal[False]],
        transport: asyncio.Transport | None,
        protocol: BaseProtocol,
        after: int,
    ) -> Close:
        """Serve the held session on a new (prepared) WebSocket, first replaying what
        came after envelope ``after``; return how this connection ended."""
        attachment = Attachment(ws, transport, protocol)
        attachment.closed = asyncio.get_running_loop().create_future()
        if self._ended:
            # It ended while the upgrade was written (the window passed, the drain).
            return await self._close(attachment, _ENDED)
        if self._attached is not None:
            self.take_over()  # another resume came first: the latest one wins
        try:
            replayed = self.outbox.attach(attachment.output, after)
        except Gap as exc:
            # The envelopes went while the upgrade was written (the old
            # connection took them): nothing to resume from.
            return await self._close(attachment, Close(WSCloseCode.POLICY_VIOLATION, str(exc)))
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
            self._metrics.held(-1)
        self._attached = attachment
        self._metrics.resumed(replayed)
        self.log.info("session_resumed", after=after, replayed=replayed)
        self._start_reader(attachment)
        close = await attachment.closed
        return await self._close(attachment, close)

    async def _close(self, attachment: Attachment, close: Close) -> Close:
        """The one close of ``attachment``: every frame written so far, then the Close
        frame; returns ``close``."""
        attachment.output.flush()  # every frame before the Close
        ws = attachment.ws
        try:
            if not close.sent and not ws.closed:
                with contextlib.suppress(ConnectionError, TimeoutError):
                    # aiohttp waits for the peer's Close and cuts the transport
                    # when cancelled; this bounds the drain of a peer that does
                    # not read.
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await ws.close(code=close.code, message=close_reason(close.reason))
        finally:
            stop_heartbeat(ws)
        return close
