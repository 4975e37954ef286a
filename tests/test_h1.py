"""The openai engine's HTTP/1.1 client against upstreams that write their answers by hand.

Each upstream here is a plain asyncio server that answers with bytes as a
test writes them (framings, splits, interim answers, broken heads, a
kept-alive connection dropped), so what the client must take and refuse is
pinned byte by byte; ``test_openai.py`` runs it against aiohttp's server and
``test_fakellm.py`` against a third-party one.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from .conftest import PATH, Certificate, Start, receive_answer, request
from .rawws import RawWebSocket
from .upstream import Upstream, started

CHUNKS = [
    {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    for delta, finish in (
        ({"role": "assistant", "content": ""}, None),
        ({"content": "hel"}, None),
        ({"content": "lo"}, None),
        ({}, "stop"),
    )
]
EVENTS = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in CHUNKS] + [b"data: [DONE]\n\n"]
SSE = b"".join(EVENTS)
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"

Answer = Callable[[asyncio.StreamWriter], Awaitable[bool]]
"""Writes one answer; returns whether to keep the connection for the next request."""


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class RawUpstream:
    """An upstream answering request n with ``answers[n - 1]`` (the last one once past it)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = answers
        self.requests: list[tuple[int, bytes]] = []  # (connection number, body)
        self.connections = 0
        self.hung_up: asyncio.Queue[int] = asyncio.Queue()  # connections the daemon closed
        self.url = ""
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._closing = False

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._closing = True
        for writer in self._handlers.values():
            writer.transport.abort()  # the handler's read ends, and so does it
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert match is not None
                self.requests.append((number, await reader.readexactly(int(match[1]))))
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
                if not await answer(writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self._closing:
                self.hung_up.put_nowait(number)
        finally:
            writer.close()


def writes(data: bytes, *, keep: bool = True, split: int = 0) -> Answer:
    """An answer of ``data``, in pieces of ``split`` bytes (0: at once), each sent alone."""

    async def answer(writer: asyncio.StreamWriter) -> bool:
        step = split or len(data)
        for at in range(0, len(data), step):
            writer.write(data[at : at + step])
            await writer.drain()
        return keep

    return answer


async def hang_up(writer: asyncio.StreamWriter) -> bool:
    """Close without a byte of answer."""
    return False


async def relay(proxy: Start, upstream: RawUpstream, *texts: str) -> list[list[dict[str, Any]]]:
    """Ask the daemon for one answer per text, on one WebSocket."""
    client = await proxy(upstream.url)
    answers = []
    async with client.ws_connect(PATH) as ws:
        for text in texts:
            await ws.send_json(request(text, request_id=text))  # errors in detail
            answers.append(await receive_answer(ws))
    return answers


def datas(answer: list[dict[str, Any]]) -> list[Any]:
    return [e["data"] for e in answer]


FRAMINGS = {
    "chunked, an event a chunk": SSE_HEAD
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + chunked(*EVENTS),
    "chunked, extensions and trailers": SSE_HEAD
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%X;name=value\r\n%b\r\n" % (len(e), e) for e in EVENTS)
    + b"0\r\nX-Trailer: yes\r\n\r\n",
    "Content-Length": SSE_HEAD + b"Content-Length: %d\r\n\r\n%b" % (len(SSE), SSE),
    "interim 100 and 103 first": b"HTTP/1.1 100 Continue\r\n\r\n"
    + b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    + SSE_HEAD
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + chunked(SSE),
    "until the connection closes": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Connection: close\r\n\r\n" + SSE,
    "HTTP/1.0": b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + SSE,
}


@pytest.mark.parametrize("split", [0, 1, 7])
@pytest.mark.parametrize("framing", list(FRAMINGS))
async def test_every_framing_and_split_is_relayed(proxy: Start, framing: str, split: int) -> None:
    """Chunked (with extensions and trailers), Content-Length, close-delimited and
    HTTP/1.0 answers, after interim ones, in pieces of any size: the same chunks."""
    data = FRAMINGS[framing]
    keep = b"close" not in data and b"HTTP/1.0" not in data
    async with RawUpstream(writes(data, keep=keep, split=split)) as upstream:
        first, second = await relay(proxy, upstream, "one", "two")
    assert datas(first) == datas(second) == CHUNKS
    # Kept-alive answers leave their connection for the next request.
    assert upstream.connections == (1 if keep else 2)


async def test_a_kept_alive_connection_dropped_while_idle_is_replaced(proxy: Start) -> None:
    """The upstream drops a pooled connection as the next request arrives on it: the
    request is sent again on a new connection, and answered."""
    good = writes(FRAMINGS["chunked, an event a chunk"])
    async with RawUpstream(good, hang_up, good) as upstream:
        first, second = await relay(proxy, upstream, "one", "two")
    assert datas(first) == datas(second) == CHUNKS
    assert [number for number, _ in upstream.requests] == [1, 1, 2]
    assert upstream.requests[1][1] == upstream.requests[2][1]


async def test_a_new_connection_closed_before_answering_is_an_error(proxy: Start) -> None:
    """A fresh connection closed without an answer is not sent again: upstream_unreachable."""
    async with RawUpstream(hang_up) as upstream:
        (answer,) = await relay(proxy, upstream, "one")
    error = answer[-1]["error"]
    assert error["code"] == "upstream_unreachable"
    assert error["message"] == "upstream replica 0 closed the connection without answering"
    assert upstream.connections == 1


BROKEN = {
    "status line": (b"HTTP/2 200 OK\r\n\r\n", "sent a malformed status line: b'HTTP/2 200 OK'"),
    "header line": (
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        "sent a malformed header line: b'No colon here'",
    ),
    "chunk size": (
        SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        "sent a malformed chunk size: b'zz'",
    ),
    "chunk too long": (
        SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        "sent a chunk longer than its size",
    ),
    "compressed": (
        SSE_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
        "sent a gzip-encoded answer",
    ),
    "Content-Length": (
        SSE_HEAD + b"Content-Length: 1x\r\n\r\n",
        "sent a malformed Content-Length: b'1x'",
    ),
    "head too large": (
        SSE_HEAD + b"X-Big: " + b"x" * 70_000 + b"\r\n\r\n",
        "sent a head over 65536 bytes",
    ),
    "switching protocols": (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
}


@pytest.mark.parametrize("case", list(BROKEN))
async def test_broken_http_is_a_protocol_error_and_the_session_goes_on(
    proxy: Start, case: str
) -> None:
    """Whatever breaks HTTP/1.1 is upstream_protocol_error with what was wrong; the
    connection is dropped and the next request is answered on a new one."""
    data, message = BROKEN[case]
    async with RawUpstream(writes(data), writes(FRAMINGS["Content-Length"])) as upstream:
        failed, answered = await relay(proxy, upstream, "one", "two")
    error = failed[-1]["error"]
    assert error["code"] == "upstream_protocol_error"
    assert error["message"] == f"upstream replica 0 {message}"
    assert datas(answered) == CHUNKS
    assert upstream.connections == 2


async def test_bytes_past_the_answer_drop_the_connection(proxy: Start) -> None:
    """An answer followed by bytes nobody asked for is relayed, but its connection is not
    kept (whatever those bytes are, they are not the next answer)."""
    data = FRAMINGS["Content-Length"] + b"HTTP/1.1 200 OK\r\n"
    async with RawUpstream(writes(data)) as upstream:
        first, second = await relay(proxy, upstream, "one", "two")
    assert datas(first) == datas(second) == CHUNKS
    assert upstream.connections == 2


async def test_a_long_tail_after_done_drops_the_connection(proxy: Start) -> None:
    """After [DONE] the body's rest is read to keep the connection, but not past 64 KiB:
    an upstream that goes on is dropped, and the next request gets a new connection."""
    answered = asyncio.Event()

    async def endless(writer: asyncio.StreamWriter) -> bool:
        head = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
        writer.write(head + chunked(*EVENTS)[: -len(b"0\r\n\r\n")])
        await answered.wait()  # the tail comes after [DONE] was read
        for _ in range(80):
            writer.write(b"%x\r\n%b\r\n" % (1024, b":" + b"x" * 1022 + b"\n"))
            await writer.drain()
        return True

    async with RawUpstream(endless, writes(FRAMINGS["Content-Length"])) as upstream:
        client = await proxy(upstream.url)
        async with client.ws_connect(PATH) as ws:
            await ws.send_json(request("one"))
            first = await receive_answer(ws)
            answered.set()
            async with asyncio.timeout(5):
                assert await upstream.hung_up.get() == 1
            await ws.send_json(request("two"))
            second = await receive_answer(ws)
    assert datas(first) == datas(second) == CHUNKS
    assert upstream.connections == 2


async def test_a_lagging_client_pauses_the_upstream_and_loses_nothing(proxy: Start) -> None:
    """While the client reads nothing the daemon stops reading the upstream (whose
    writes then wait), and the client's silence is not the upstream's: lagging past
    --upstream-read-timeout, the client still gets the whole answer once it reads."""
    pieces = [
        {
            "choices": [
                {"index": 0, "delta": {"content": f"{n:03}" + "x" * 60_000}, "finish_reason": None}
            ]
        }
        for n in range(300)
    ]
    pieces.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    written = 0
    held = asyncio.Event()  # a write of the upstream's waited twice the read timeout

    async def flood(writer: asyncio.StreamWriter) -> bool:
        nonlocal written
        writer.write(SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(chunked(b"data: " + json.dumps(piece).encode() + b"\n\n")[:-5])
            try:
                async with asyncio.timeout(0.6):
                    await writer.drain()
            except TimeoutError:
                held.set()  # the daemon has read nothing for 0.6 s, and kept the connection
                await writer.drain()
            written += 1
        writer.write(chunked(b"data: [DONE]\n\n"))
        return True

    async with RawUpstream(flood) as upstream:
        daemon = await proxy(upstream.url, upstream_read_timeout=0.3)
        ws = await RawWebSocket.connect(daemon.host, daemon.port, PATH)
        try:
            ws.send_frame(json.dumps(request("flood")).encode())
            async with asyncio.timeout(5):  # the client lags meanwhile
                await held.wait()
            assert written < len(pieces)  # the upstream waits for the daemon to read
            got: list[dict[str, Any]] = []
            while not got or got[-1]["data"]["choices"][0]["finish_reason"] is None:
                opcode, payload = await ws.read_frame()
                assert opcode == 0x1, payload
                got.append(json.loads(payload))
        finally:
            ws.abort()
    assert [e["data"] for e in got] == pieces


async def test_one_pool_slot_serves_two_replicas(proxy: Start) -> None:
    """With --upstream-max-connections 1 a session on another replica closes the idle
    connection to make its place, rather than waiting for it forever."""
    good = writes(FRAMINGS["chunked, an event a chunk"])
    async with RawUpstream(good) as first, RawUpstream(good) as second:
        client = await proxy(first.url, second.url, upstream_max_connections=1)
        for _ in range(3):  # sessions start on replicas 0, 1, 0 in turn
            async with client.ws_connect(PATH) as ws:
                await ws.send_json(request("hi"))
                assert datas(await receive_answer(ws)) == CHUNKS
    assert (first.connections, second.connections) == (2, 1)


@pytest.fixture
async def tls_upstream(certificate: Certificate) -> AsyncIterator[Upstream]:
    async for (upstream,) in started(1, certificate.server_context()):
        yield upstream


async def test_https_upstream_trusted_by_the_system_store(
    proxy: Start, tls_upstream: Upstream, certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https:// replica is verified against the system's trust store (here
    SSL_CERT_FILE naming the test CA), and relayed."""
    monkeypatch.setenv("SSL_CERT_FILE", certificate.cafile)
    client = await proxy(tls_upstream)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("secure words", request_id="s"))
        answer = await receive_answer(ws)
    assert datas(answer) == tls_upstream.sent[0]


async def test_https_upstream_with_an_untrusted_certificate_is_unreachable(
    proxy: Start, tls_upstream: Upstream
) -> None:
    """A certificate the trust store does not vouch for: upstream_unreachable, saying why."""
    client = await proxy(tls_upstream)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("secure words", request_id="s"))
        (error,) = await receive_answer(ws)
    assert error["error"]["code"] == "upstream_unreachable"
    assert error["error"]["message"] == (
        "upstream replica 0 connection failed: SSLCertVerificationError: "
        "unable to get local issuer certificate"
    )
    assert tls_upstream.bodies == []
