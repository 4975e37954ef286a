"""A connection's outgoing Text frames, coalesced: one write per event-loop pass.

The frames produced in one pass of the event loop are framed into one buffer
and written with one ``transport.write`` (one send syscall instead of one
each), by a flush scheduled with ``call_soon`` when the first of them is
framed. The flush runs as soon as the writing task suspends or yields, so a
lone frame goes out without delay; at ``FLUSH_AT`` bytes it goes out at once.
Frames are whole and in order; aiohttp's own frames (pongs, pings, the Close)
go between them, so the Close must follow a :meth:`Output.flush`.
"""

from __future__ import annotations

import asyncio
import struct

from aiohttp.base_protocol import BaseProtocol

from realtime_daemon.transport.aiohttp_private import wait_writable

__all__ = ["FLUSH_AT", "Output"]

FLUSH_AT = 64 * 1024
"""Bytes of coalesced frames written at once, without waiting for the pass to end."""

_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


class Output:
    """Coalesced, unmasked (server-to-client) Text frames on one transport.

    Args:
        transport: the connection's transport.
        protocol: aiohttp's protocol of the connection, for its drain.
    """

    __slots__ = ("_buffer", "_flush_handle", "_loop", "_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport | None, protocol: BaseProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._flush_handle: asyncio.Handle | _Held | None = None

    @property
    def closing(self) -> bool:
        """Whether the connection can take no more bytes."""
        return self._transport is None or self._transport.is_closing()

    @property
    def paused(self) -> bool:
        """Whether the transport is over its high-water mark (the client lags)."""
        return self._protocol.writing_paused

    def write(self, payload: bytes) -> None:
        """Frame ``payload`` as one Text frame; it is written by the next flush."""
        buffer = self._buffer
        buffer += _text_frame_header(len(payload))
        buffer += payload
        if len(buffer) >= FLUSH_AT:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self.flush)

    def hold(self) -> None:
        """The caller flushes after its next writes: they schedule no flush of their own."""
        if self._flush_handle is None:
            self._flush_handle = _HELD

    def flush(self) -> None:
        """Write the framed bytes, if the connection is still there to take them."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._buffer and not self.closing:
            assert self._transport is not None
            # A fresh buffer each time: the transport may keep this one.
            self._transport.write(self._buffer)
            self._buffer = bytearray()

    async def drain(self) -> None:
        """Flush, and wait until the transport is below its high-water mark.

        Raises:
            ConnectionError: the connection is lost.
        """
        self.flush()
        await wait_writable(self._protocol)

    def abort(self) -> None:
        """Drop the connection at once."""
        if self._transport is not None:
            self._transport.abort()


class _Held:
    """In place of a scheduled flush, while a caller that will flush writes frames."""

    def cancel(self) -> None:
        pass


_HELD = _Held()


def _text_frame_header(length: int) -> bytes:
    """RFC 6455 header of a whole, unmasked Text frame."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return _HEADER_16.pack(0x81, 126, length)
    return _HEADER_64.pack(0x81, 127, length)
