"""A probe relay: the least Python can spend per relayed chunk, for the relay scenario.

Plain asyncio Protocols on uvloop, no aiohttp: the WebSocket handshake by
hand, one keep-alive upstream connection per client, per upstream read one
de-chunk, the SSE events split with ``bytes.find``, and every frame of that
read in one ``transport.write``; no coroutine or await per chunk. It skips
everything a gateway needs (validation, backpressure, timeouts, errors,
heartbeats): a lower bound, not a relay to run.

    python benchmarks/relay_probe.py PORT UPSTREAM_HOST:UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import sys

import uvloop

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Upstream(asyncio.Protocol):
    """One keep-alive upstream connection, relaying into one client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.head = True
        self.sse = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client.upstream = self
        self.client.upstream_ready()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if self.head:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            buffer = buffer[end + 4 :]
            self.head = False
        # De-chunk what is whole.
        body = []
        while True:
            line = buffer.find(b"\r\n")
            if line < 0:
                break
            size = int(buffer[:line], 16)
            if len(buffer) < line + 2 + size + 2:
                break
            body.append(buffer[line + 2 : line + 2 + size])
            buffer = buffer[line + 2 + size + 2 :]
            if size == 0:
                self.head = True  # the answer is over; the next starts with a head
        self.buffer = buffer
        sse = self.sse + b"".join(body)
        frames = []
        start = 0
        while (end := sse.find(b"\n\n", start)) >= 0:
            event = sse[start:end]
            start = end + 2
            if event.startswith(b"data: {"):
                frames.append(_frame(self.client.envelope(event[6:])))
        self.sse = sse[start:]
        if frames:
            self.client.write(b"".join(frames))


class Client(asyncio.Protocol):
    """One WebSocket client: the handshake, its text frames, its upstream."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream_address = upstream
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.open = False
        self.n = 0
        self.upstream: Upstream | None = None
        self.pending: list[bytes] = []
        self.connecting: asyncio.Task[object] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        host, port = self.upstream_address
        self.connecting = loop.create_task(
            loop.create_connection(lambda: Upstream(self), host, port)
        )

    def upstream_ready(self) -> None:
        for body in self.pending:
            self._post(body)
        self.pending.clear()

    def envelope(self, data: bytes) -> bytes:
        self.n += 1
        return b'{"data":%b,"id":"%d"}' % (data, self.n)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            key = next(
                line.split(b":", 1)[1].strip()
                for line in buffer[:end].split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            self.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.open = True
            buffer = buffer[end + 4 :]
        while len(buffer) >= 6:
            n = buffer[1] & 0x7F
            at = 2
            if n == 126:
                (n,) = struct.unpack("!H", buffer[2:4])
                at = 4
            elif n == 127:
                (n,) = struct.unpack("!Q", buffer[2:10])
                at = 10
            if len(buffer) < at + 4 + n:
                break
            mask = buffer[at : at + 4]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buffer[at + 4 : at + 4 + n]))
            opcode = buffer[0] & 0x0F
            buffer = buffer[at + 4 + n :]
            if opcode == 0x8:  # Close: answer it and end
                self.write(b"\x88\x02\x03\xe8")
                assert self.transport is not None
                self.transport.close()
                return
            if opcode == 0x1:
                self._request(payload)
        self.buffer = buffer

    def _request(self, payload: bytes) -> None:
        body = payload[:-1] + b', "stream": true}'
        if self.upstream is None or self.upstream.transport is None:
            self.pending.append(body)
            return
        self._post(body)

    def _post(self, body: bytes) -> None:
        upstream = self.upstream
        assert upstream is not None and upstream.transport is not None
        upstream.transport.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def serve(port: int, upstream: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()

    server = await loop.create_server(lambda: Client(upstream), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    host, port = sys.argv[2].rsplit(":", 1)
    uvloop.run(serve(int(sys.argv[1]), (host, int(port))))


if __name__ == "__main__":
    main()
