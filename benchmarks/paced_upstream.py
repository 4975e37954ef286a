"""A paced OpenAI-compatible upstream: each answer streams CHUNKS chunks at RATE per second.

Every chunk's ``delta.content`` is the time it was written
(``time.monotonic_ns()``, the same clock in every process of the machine),
so that a client can tell the latency each relay added. Plain asyncio
Protocol on uvloop, keep-alive, chunked transfer encoding: it costs a few
microseconds a chunk, so that the relay under test, not the upstream, is
what the benchmark measures.

    python benchmarks/paced_upstream.py PORT [--rate 30] [--chunks 100]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)
_CHUNK = (
    b'data: {"id":"chatcmpl-paced","object":"chat.completion.chunk","created":0,'
    b'"model":"paced","choices":[{"index":0,"delta":{"content":"%d"},"finish_reason":null}]}\n\n'
)
_STOP = (
    b'data: {"id":"chatcmpl-paced","object":"chat.completion.chunk","created":0,'
    b'"model":"paced","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def _framed(body: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(body), body)


class Upstream(asyncio.Protocol):
    def __init__(self, interval: float, chunks: int) -> None:
        self._interval = interval
        self._chunks = chunks
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            self._answer()

    def _answer(self) -> None:
        assert self._transport is not None
        self._sent = 0
        self._transport.write(_HEAD + _framed(_CHUNK % time.monotonic_ns()))
        self._sent = 1
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._sent < self._chunks:
            transport.write(_framed(_CHUNK % time.monotonic_ns()))
            self._sent += 1
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)
        else:
            transport.write(_framed(_STOP) + b"0\r\n\r\n")
            self._timer = None


async def serve(port: int, rate: float, chunks: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Upstream(1 / rate, chunks), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--chunks", type=int, default=100)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.rate, args.chunks))


if __name__ == "__main__":
    main()
