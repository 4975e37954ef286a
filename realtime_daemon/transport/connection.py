"""One WebSocket of a session: its reader, its output, its one close.

The session across WebSockets is :class:`~realtime_daemon.session.host.Host`;
a :class:`Connection` is one of them, as a :class:`~.host.Link`. Its reader
(:func:`~.reader.read_frames`, a task per WebSocket) is the only caller of
``ws.receive()``: it puts frames into the host's bounded channel and returns
the close that ended reading, which it reports to the host (the session
ends, or is held if it is resumable and the connection was lost). The
session writes envelopes through the outbox into its coalescing
:class:`~.output.Output`. When the session ends the reader is cancelled
(aiohttp keeps the connection open when ``receive()`` is cancelled),
:func:`~.closes.choose_close` picks the close from how each ended, and
``ws.close()`` is called once: a second racing close would send the default
code instead (aiohttp issue #3448).

The first connection's handler runs the session (:meth:`Connection.serve`);
a resumed one's waits until the host lets go of it (:meth:`Connection.resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from aiohttp import WSCloseCode, web
from aiohttp.base_protocol import BaseProtocol

from realtime_daemon.engines.waiters import Waiters
from realtime_daemon.session.answers import Ending
from realtime_daemon.session.host import Host, SessionEnded
from realtime_daemon.session.replay import Gap
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

__all__ = ["Connection"]

_ENDED = Close(WSCloseCode.OK, "session ended")


class Connection:
    """One WebSocket of a session: its reader, its output, and how it is closed.

    Args:
        ws: the prepared WebSocket, text frames undecoded.
        transport: the connection's transport: frames are written to it.
        protocol: aiohttp's protocol of the connection, for its drain.
        limits: the per-connection limits.
    """

    __slots__ = ("_closer", "_limits", "_verdict", "_waiters", "output", "reader", "ws")

    def __init__(
        self,
        ws: web.WebSocketResponse[Literal[False]],
        transport: asyncio.Transport | None,
        protocol: BaseProtocol,
        limits: Limits,
    ) -> None:
        self.ws = ws
        self.output = Output(transport, protocol)
        self._limits = limits
        self.reader: asyncio.Task[Close] | None = None
        self._verdict: Close | None = None  # how it is to be closed, once decided
        self._waiters: Waiters | None = None  # a resumed one's handler, until then
        self._closer: asyncio.Task[Close] | None = None  # a take-over's close

    @property
    def sink(self) -> Output:
        return self.output

    async def serve(self, host: Host) -> Close:
        """Serve ``host``'s session from this, its first connection, until the session
        ends; return how this connection ended."""
        await host.run()
        return await self._finish()

    async def resume(self, host: Host, after: int) -> Close:
        """Serve the held session on this (prepared) connection, first replaying what
        came after envelope ``after``; return how this connection ended."""
        try:
            host.resume(self, after)
        except SessionEnded:
            return await self._close(_ENDED)
        except Gap as exc:
            return await self._close(Close(WSCloseCode.POLICY_VIOLATION, str(exc)))
        return await self._finish()

    # -- session.host.Link ------------------------------------------------------------

    def start(self, host: Host) -> None:
        # The reader is a task the connection owns (not a TaskGroup's: an
        # idle connection's memory counts); the host stops and awaits it,
        # or a take-over's close does.
        reader = self.reader = asyncio.create_task(
            read_frames(self.ws, host.channel, host.dialect, self._limits, host.busy)
        )
        reader.add_done_callback(lambda task: self._read(host, task))

    def _read(self, host: Host, reader: asyncio.Task[Close]) -> None:
        """Reading ended: by itself, the host hears of it (lost: no Close frame)."""
        if not reader.cancelled():
            read = reader.result()
            host.reading_ended(self, read.sent and read.code == WSCloseCode.ABNORMAL_CLOSURE)

    async def stop(self) -> None:
        reader = self.reader
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait((reader,))

    def ended(self, ending: Ending, draining: bool) -> None:
        assert self.reader is not None
        read = None if self.reader.cancelled() else self.reader.result()
        self._decide(choose_close(read, ending, draining=draining))

    def dropped(self, taken_over: bool) -> None:
        if taken_over:
            # Closed now (1001), while the handler that runs the session (the
            # first connection's) may be busy for a long time yet.
            self._closer = asyncio.create_task(self._take_over())
            self._decide(TAKEN_OVER)
        else:
            assert self.reader is not None
            self._decide(self.reader.result())  # lost: nothing to send

    # -- the one close ----------------------------------------------------------------

    def _decide(self, close: Close) -> None:
        self._verdict = close
        if self._waiters is not None:
            self._waiters.wake_all()

    async def _finish(self) -> Close:
        """Wait until the session let go of this connection, then close it once."""
        while self._verdict is None:
            if self._waiters is None:
                self._waiters = Waiters()
            await self._waiters.wait()
        if self._closer is not None:
            return await self._closer
        return await self._close(self._verdict)

    async def _take_over(self) -> Close:
        """Stop reading (aiohttp's close reads the client's Close reply), then close."""
        await self.stop()
        return await self._close(TAKEN_OVER)

    async def _close(self, close: Close) -> Close:
        """The one close of the WebSocket: every frame written so far, then the Close
        frame; returns ``close``."""
        self.output.flush()  # every frame before the Close
        ws = self.ws
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
