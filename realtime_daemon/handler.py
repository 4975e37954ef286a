"""One WebSocket connection: a reader, a writer task, and one close.

The reader (``Connection._read``) is the only caller of ``ws.receive()``: it
puts Text frames into the bounded :class:`RequestChannel` and returns the
close that ended reading. It runs in the handler's own task. The writer task
(``Connection._write``) iterates the engine's ``generate`` over that channel
and sends each envelope, numbered; it runs in a TaskGroup the connection
owns. When the first of them ends, the connection stops the other, waits for
it, and only then calls ``ws.close()`` once with the code it picked: a
second racing close would send the default code instead (aiohttp issue #3448).

Close codes (see the README's wire contract):

- 1000: the client closed, the engine ended the session, or it sat idle;
- 1001: the daemon is shutting down (after a drain);
- 1003: a binary frame; 1007: a frame that is not a chat-completion request;
- 1008: the client kept sending over its rate limit, or stopped reading;
- 1009: a message over ``max_message_size`` (aiohttp closes this one itself);
- 1011: the engine raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Literal

import msgspec
import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.base_protocol import BaseProtocol

from .admission import TokenBucket
from .channel import ChannelClosed, RequestChannel
from .engines.base import Context, Engine, aclose
from .metrics import RequestTracker
from .output import Output
from .protocol import Envelope, FrameError, encode_envelope

__all__ = ["CLOSE_TIMEOUT", "Close", "Connection", "Limits"]

logger = structlog.get_logger("realtime_daemon")

CLOSE_TIMEOUT = 5.0
"""Seconds the closing handshake may take before the transport is cut."""

TIME_SLICE = 0.001
"""Seconds a connection may send without yielding to the loop (fair scheduling)."""


MAX_REASON_BYTES = 123
"""A Close frame is a control frame: 125 bytes, two of them the code."""


@dataclasses.dataclass(frozen=True)
class Close:
    """How a connection ends.

    Attributes:
        code: the WebSocket close code.
        reason: the close reason, for the frame and the log.
        sent: the connection is already closed (by aiohttp or the peer), so
            nothing is left to send.
        notice: when set, sent first as ``{"event": "error", "comment": [notice]}``,
            to end an answer that was cut.
    """

    code: int
    reason: str = ""
    sent: bool = False
    notice: str | None = None


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one connection may do; see the matching options."""

    rate: float = 0.0
    idle_timeout: float = 0.0
    send_timeout: float = 30.0

    @property
    def rate_message(self) -> str:
        return f"rate limit: at most {self.rate:g} requests per second; request dropped"


_PEER_GONE = Close(WSCloseCode.ABNORMAL_CLOSURE, "peer gone", sent=True)
_SHUTDOWN = Close(WSCloseCode.GOING_AWAY, "server shutting down")
_SHUTDOWN_CUT = dataclasses.replace(_SHUTDOWN, notice="answer cut: server shutting down")


def close_reason(text: str) -> bytes:
    """``text`` as UTF-8, cut on a character boundary to fit a Close frame."""
    data = text.encode()
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[:MAX_REASON_BYTES].decode(errors="ignore").encode()


class Connection:
    """The reader, the writer and the close of one WebSocket.

    Args:
        ws: the prepared WebSocket, text frames undecoded.
        engine: the daemon's engine.
        queue_size: the request channel's bound.
        session_id: the fresh id of this connection.
        peer: the client's address, for the log.
        tracker: the connection's request accounting.
        limits: the per-connection limits.
        transport: the connection's transport: frames are written to it.
        protocol: aiohttp's protocol of the connection, for its drain.
    """

    # Slots, and no bound logger until one is needed: thousands of idle
    # connections are the common case.
    __slots__ = (
        "_drain_deadline",
        "_engine",
        "_limits",
        "_loop",
        "_output",
        "_reading",
        "_slice_end",
        "_stop_requested",
        "_task",
        "_ws",
        "channel",
        "chunks",
        "context",
        "peer",
        "tracker",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse[Literal[False]],
        engine: Engine,
        *,
        queue_size: int,
        session_id: str,
        peer: str,
        tracker: RequestTracker,
        limits: Limits,
        transport: asyncio.Transport | None,
        protocol: BaseProtocol,
    ) -> None:
        self.tracker = tracker
        self._limits = limits
        self._output = Output(transport, protocol)
        self._loop = asyncio.get_running_loop()
        self._slice_end = 0.0
        self.channel = RequestChannel(queue_size, observer=tracker)
        self.context = Context(session_id)
        self.chunks = 0
        self._ws = ws
        self._engine = engine
        self.peer = peer
        self._task: asyncio.Task[object]
        self._reading = False
        self._stop_requested = False
        self._drain_deadline: float | None = None

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger:
        """A logger bound to this connection's id and peer."""
        log: structlog.typing.FilteringBoundLogger = logger.bind(
            conn=self.context.session_id, peer=self.peer
        )
        return log

    async def run(self) -> Close:
        """Serve the connection until it ends; return how it ended.

        The reader runs in the calling (handler) task; the writer in a task
        of a TaskGroup. Whichever ends first decides the close. Reading is
        stopped by cancelling this task (aiohttp keeps the connection open
        when ``receive()`` is cancelled): when the writer ends, or on
        :meth:`drain`. Any other cancellation (the shutdown deadline) is not
        ours, and goes on.
        """
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self._write())
            close: Close | None = None  # None: reading was stopped
            if self._drain_deadline is None:
                self._reading = True
                try:
                    close = await self._read()
                except asyncio.CancelledError:
                    if not self._stop_requested or task.uncancel() > 0:
                        # The engine sees its context stop before the group
                        # cancels the writer.
                        self.context.stop_generating()
                        raise
                finally:
                    self._reading = False
            if close is not None:
                if close.sent and writer.done() and writer.result() is not _PEER_GONE:
                    # The writer cut the transport (a client not reading); the
                    # reader only saw it go. The writer knows why.
                    close = writer.result()
                self._stop(writer)
            elif writer.done():
                close = writer.result()
            else:
                close = await self._finish_drain(writer)
        self.context.stop_generating()
        await self._close(close)
        return close

    def _stop_reading(self) -> None:
        if self._reading and not self._stop_requested:
            self._stop_requested = True
            self._task.cancel()

    def drain(self, deadline: float) -> None:
        """Stop reading requests; let answers in progress finish until ``deadline``.

        Args:
            deadline: event-loop time after which unfinished answers are cut.
        """
        self._drain_deadline = deadline
        self._stop_reading()

    async def _finish_drain(self, writer: asyncio.Task[Close]) -> Close:
        """The reader was stopped by :meth:`drain`: finish queued work, then 1001."""
        assert self._drain_deadline is not None
        self.channel.close()
        timeout = self._drain_deadline - self._loop.time()
        await asyncio.wait((writer,), timeout=max(timeout, 0.0))
        if not writer.done():
            self._stop(writer)
            return _SHUTDOWN_CUT
        close = writer.result()
        return _SHUTDOWN if close.code == WSCloseCode.OK else close

    def _stop(self, writer: asyncio.Task[Close]) -> None:
        self.context.stop_generating()
        self.channel.close()
        writer.cancel()

    @property
    def busy(self) -> bool:
        """Whether a request is being answered or waits in the queue."""
        return self.tracker.in_progress or len(self.channel) > 0

    async def _read(self) -> Close:
        ws = self._ws
        idle = self._limits.idle_timeout or None
        bucket = TokenBucket(self._limits.rate) if self._limits.rate else None
        refused = 0
        while True:
            try:
                msg = await ws.receive(timeout=idle)
            except TimeoutError:
                if self.busy:
                    continue
                return Close(WSCloseCode.OK, "idle timeout")
            if msg.type is WSMsgType.TEXT:
                if bucket is not None and not bucket.take():
                    # Refused before decoding: a flood costs no parsing.
                    refused += 1
                    if refused > bucket.capacity:
                        return Close(WSCloseCode.POLICY_VIOLATION, "request rate limit exceeded")
                    notice = Envelope(event="error", comment=[self._limits.rate_message])
                    failed = await self._deliver(notice, track=False)
                    if failed is not None:
                        return failed
                    continue
                refused = 0
                try:
                    await self.channel.put(msg.data)
                except FrameError as exc:
                    return Close(WSCloseCode.INVALID_TEXT, f"malformed JSON frame: {exc}")
                except ChannelClosed:
                    return Close(WSCloseCode.OK, "stream complete")
            elif msg.type is WSMsgType.BINARY:
                return Close(WSCloseCode.UNSUPPORTED_DATA, "binary frames not supported")
            elif msg.type is WSMsgType.CLOSE:
                return Close(WSCloseCode.OK)
            else:
                # CLOSED or ERROR: aiohttp has already closed (EOF, reset, or a
                # protocol error such as an oversized message, closed 1009).
                code = ws.close_code or WSCloseCode.ABNORMAL_CLOSURE
                return Close(code, str(msg.data or "peer gone"), sent=True)

    async def _write(self) -> Close:
        try:
            stream = self._engine.generate(self.channel, self.context)
            try:
                async for envelope in stream:
                    failed = await self._deliver(envelope)
                    if failed is not None:
                        # Stop the context before the generator is closed, so
                        # the engine sees why it ends.
                        self.context.stop_generating()
                        return failed
            finally:
                await aclose(stream)  # as contextlib.aclosing, for any async iterator
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            self.log.exception("engine_failed", error=message, chunks=self.chunks)
            # Before the first envelope the engine failed to start: the close
            # says it all. Mid-stream, the client also gets it in band.
            notice = message if self.chunks else None
            return Close(WSCloseCode.INTERNAL_ERROR, f"engine error: {message}", notice=notice)
        finally:
            self._stop_reading()  # the writer is done: so is the connection
        return Close(WSCloseCode.OK, "stream complete")

    def _frame(self, envelope: Envelope, *, track: bool = True) -> None:
        """Number and frame one envelope; the next flush writes it (see output.py)."""
        self.chunks += 1
        self._output.write(encode_envelope(msgspec.structs.replace(envelope, id=str(self.chunks))))
        if track:
            self.tracker.sent(envelope)

    async def _deliver(self, envelope: Envelope, *, track: bool = True) -> Close | None:
        """Send one envelope; a Close if the client is gone or stopped reading.

        It waits only if the client lags, and then for ``send_timeout`` at most.
        """
        output = self._output
        if output.closing:
            return _PEER_GONE
        self._frame(envelope, track=track)
        if output.paused:
            try:
                async with asyncio.timeout(self._limits.send_timeout):
                    await output.drain()
            except ConnectionError:
                return _PEER_GONE
            except TimeoutError:
                output.abort()
                return Close(
                    WSCloseCode.POLICY_VIOLATION, "send timeout: client not reading", True
                )
        # Fair scheduling: a fast engine and a client that keeps up would
        # otherwise never yield, and starve every other connection.
        if self._loop.time() >= self._slice_end:
            if self._slice_end:
                await asyncio.sleep(0)
            self._slice_end = self._loop.time() + TIME_SLICE
        return None

    async def _close(self, close: Close) -> None:
        """The one close: an optional error envelope, then the Close frame."""
        self._output.flush()  # every frame before the Close
        if close.sent or self._ws.closed:
            return
        with contextlib.suppress(ConnectionError, TimeoutError):
            # aiohttp waits for the peer's Close and cuts the transport when
            # cancelled; this bounds the drain of a peer that does not read.
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if close.notice is not None:
                    self._frame(Envelope(event="error", comment=[close.notice]))
                    self._output.flush()
                await self._ws.close(code=close.code, message=close_reason(close.reason))
