"""A bare-bones WebSocket client over a plain TCP stream, for what real clients won't do.

It can drop the connection without a Close, send frames a library would
refuse to build, and leave frames unread.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct


class RawWebSocket:
    """A client-side WebSocket with no protocol checks of its own."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, headers: dict[str, str] | None = None
    ) -> RawWebSocket:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_frame(
        self, payload: bytes, opcode: int = 0x1, fin: bool = True, masked: bool = True
    ) -> None:
        """Write one frame (no drain); clients must mask, ``masked=False`` breaks that rule."""
        first = (0x80 if fin else 0) | opcode
        bit = 0x80 if masked else 0
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", first, bit | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", first, bit | 126, n)
        else:
            header = struct.pack("!BBQ", first, bit | 127, n)
        if not masked:
            self.writer.write(header + payload)
            return
        mask = os.urandom(4)
        key = (mask * (n // 4 + 1))[:n]
        self.writer.write(header + mask + bytes(a ^ b for a, b in zip(payload, key, strict=True)))

    async def read_close(self) -> tuple[int, str]:
        """Skip frames up to the server's Close; return its code and reason."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    async def read_frame(self) -> tuple[int, bytes]:
        """Read one server frame: (opcode, payload)."""
        first, second = await self.reader.readexactly(2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(n)

    def abort(self) -> None:
        """Drop the TCP connection at once: no Close frame, a reset."""
        self.writer.transport.abort()
        self.writer.close()
