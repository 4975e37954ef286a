"""Attacks on a running daemon. After each, it still serves a well-behaved client
correctly, and every task the attack caused has ended."""

from __future__ import annotations

import asyncio
import json
import random
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSCloseCode
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_daemon.server.app import STATE
from realtime_daemon.session.channel import RequestChannel
from realtime_daemon.wire.chat import FrameError, Request, decode_request

from .conftest import PATH, Client, StartServer, content, receive_answer, request
from .rawws import RawWebSocket

# -- the decoder and the channel, by generated input ------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
message_like = st.fixed_dictionaries(
    {"role": json_values}, optional={"content": json_values, "name": json_values}
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "model": st.text() | json_values,
        "messages": st.lists(message_like, max_size=3) | json_values,
        "stream_options": st.fixed_dictionaries({"include_usage": json_values}) | json_values,
        "temperature": json_values,
        "max_tokens": json_values,
        "stop": json_values,
    },
)


def decodes_or_refuses(frame: bytes) -> Request | None:
    try:
        return decode_request(frame)
    except FrameError as exc:
        assert str(exc)  # a reason for the close frame
        return None


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused(frame: bytes) -> None:
    """Any bytes at all either decode into a request or raise FrameError, nothing else."""
    decodes_or_refuses(frame)


@given(request_like)
def test_any_request_shaped_json_decodes_or_is_refused(body: dict[str, Any]) -> None:
    """JSON with every field of any type either decodes or raises FrameError."""
    result = decodes_or_refuses(json.dumps(body).encode())
    if result is not None:
        assert isinstance(result.chat.model, str)
        assert isinstance(result.chat.messages, list)


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=60) | request_like.map(lambda b: json.dumps(b).encode())))
def test_channel_takes_good_frames_and_refuses_bad_ones(frames: list[bytes]) -> None:
    """Fed any frames, the channel holds exactly the ones that decode, in order."""

    async def run() -> tuple[int, int]:
        channel = RequestChannel(len(frames) + 1)
        good = 0
        for frame in frames:
            try:
                await channel.put(frame)
                good += 1
            except FrameError:
                pass
        channel.close()
        return good, len([r async for r in channel])

    good, delivered = asyncio.run(run())
    assert good == delivered


# -- attacks on a running server ---------------------------------------------------


@pytest.fixture
async def target(serve_engine: StartServer) -> AsyncIterator[Client]:
    client = await serve_engine(max_connections=20, max_message_size=1024 * 1024)
    before = asyncio.all_tasks()
    yield client
    # After the attack: no connection left, no task left, and a good client served.
    connections = client.app[STATE].connections
    async with asyncio.timeout(5):
        await connections.wait_closed()
        left = asyncio.all_tasks() - before - {asyncio.current_task()}
        if left:
            await asyncio.wait(left)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("still fine 🙂"))
        assert content(await receive_answer(ws)) == "still fine 🙂"


async def raw(client: Client) -> RawWebSocket:
    return await RawWebSocket.connect(client.host, client.port, PATH)


async def closed_with(client: Client, *frames: bytes) -> tuple[int, str]:
    ws = await raw(client)
    for frame in frames:
        ws.send_frame(frame)
    async with asyncio.timeout(5):
        result = await ws.read_close()
    ws.abort()
    return result


async def test_random_and_truncated_json(target: Client) -> None:
    """Random bytes and every truncation of a request close 1007 with a reason."""
    rng = random.Random(7)
    good = json.dumps(request("truncate me")).encode()
    frames = [good[:n] for n in range(0, len(good), 7)]
    frames += [
        bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 80))) for _ in range(10)
    ]
    for frame in frames:
        code, reason = await closed_with(target, frame)
        assert code == WSCloseCode.INVALID_TEXT, frame
        assert reason.startswith("malformed JSON frame: ")


async def test_deep_nesting(target: Client) -> None:
    """Arrays nested 100 000 deep close 1007, not a crash."""
    nested = b"[" * 100_000 + b"]" * 100_000
    frame = b'{"model": "m", "messages": [{"role": "user"}], "x": ' + nested + b"}"
    assert await closed_with(target, frame) == (
        WSCloseCode.INVALID_TEXT,
        "malformed JSON frame: JSON nested too deeply",
    )


async def test_huge_strings_within_the_limit_are_served(target: Client) -> None:
    """A 900 KB string in an unknown field is accepted and the request answered."""
    async with target.ws_connect(PATH) as ws:
        await ws.send_json(request("ok", padding="x" * 900_000))
        assert content(await receive_answer(ws)) == "ok"


WRONG_TYPES = [
    ("model", 1),
    ("model", None),
    ("messages", "hi"),
    ("messages", [1]),
    ("messages", [{"role": 1}]),
    ("messages", [{"role": "user", "content": 5}]),
    ("messages", [{"role": "user", "content": [{"text": "no type"}]}]),
    ("stream", "yes"),
    ("stream_options", []),
    ("stream_options", {"include_usage": "y"}),
    ("max_tokens", "10"),
    ("max_completion_tokens", 1.5),
    ("temperature", "hot"),
    ("top_p", []),
    ("n", {}),
    ("stop", 3),
    ("seed", "s"),
    ("presence_penalty", "p"),
    ("frequency_penalty", [0]),
    ("user", 42),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
async def test_wrong_type_in_every_field(target: Client, field: str, value: Any) -> None:
    """A wrong type in any declared field closes 1007 naming the field."""
    body = {**request("x"), field: value}
    code, reason = await closed_with(target, json.dumps(body).encode())
    assert code == WSCloseCode.INVALID_TEXT
    assert field in reason or "messages" in reason


async def test_invalid_utf8(target: Client) -> None:
    """Bytes that are not UTF-8 in a Text frame close 1007."""
    code, _ = await closed_with(target, b'{"model": "\xc3\x28"}')
    assert code == WSCloseCode.INVALID_TEXT


async def test_fragmented_text_with_a_ping_between_fragments(target: Client) -> None:
    """A message in fragments with a ping in between is answered, and the ping ponged."""
    ws = await raw(target)
    frame = json.dumps(request("pieces")).encode()
    ws.send_frame(frame[:10], opcode=0x1, fin=False)
    ws.send_frame(b"are you there", opcode=0x9)
    ws.send_frame(frame[10:20], opcode=0x0, fin=False)
    ws.send_frame(frame[20:], opcode=0x0, fin=True)
    frames = []
    async with asyncio.timeout(5):
        while True:
            opcode, payload = await ws.read_frame()
            frames.append((opcode, payload))
            if opcode == 0x1 and json.loads(payload)["data"]["choices"][0]["finish_reason"]:
                break
    assert (0xA, b"are you there") in frames
    text = "".join(
        json.loads(p)["data"]["choices"][0]["delta"].get("content", "") for o, p in frames if o == 1
    )
    assert text == "pieces"
    ws.abort()


@pytest.mark.parametrize(
    ("opcode", "payload", "fin", "masked"),  # (aiohttp accepts unmasked client frames)
    [
        (0x0, b"continuation with no start", True, True),
        (0x9, b"p" * 126, True, True),  # control frames carry at most 125 bytes
        (0x9, b"ping", False, True),  # control frames cannot be fragmented
        (0x3, b"reserved opcode", True, True),
    ],
)
async def test_protocol_violations_close_1002(
    target: Client, opcode: int, payload: bytes, fin: bool, masked: bool
) -> None:
    """Frames that break RFC 6455 close with 1002."""
    ws = await raw(target)
    ws.send_frame(payload, opcode=opcode, fin=fin, masked=masked)
    async with asyncio.timeout(5):
        code, _ = await ws.read_close()
    assert code == WSCloseCode.PROTOCOL_ERROR
    ws.abort()


async def test_ping_flood(target: Client) -> None:
    """Two thousand pings get two thousand pongs, and the request after them an answer."""
    ws = await raw(target)
    for n in range(2000):
        ws.send_frame(str(n).encode(), opcode=0x9)
    ws.send_frame(json.dumps(request("after the flood")).encode())
    pongs, text = 0, ""
    async with asyncio.timeout(10):
        while True:
            opcode, payload = await ws.read_frame()
            if opcode == 0xA:
                pongs += 1
            elif opcode == 0x1:
                chunk = json.loads(payload)["data"]["choices"][0]
                text += chunk["delta"].get("content", "")
                if chunk["finish_reason"]:
                    break
    assert (pongs, text) == (2000, "after the flood")
    ws.abort()


async def test_connection_flood_past_the_limit(target: Client) -> None:
    """Twenty connections are served; the ones past the limit get 503 before any upgrade."""
    held = [await raw(target) for _ in range(20)]
    statuses = []
    for _ in range(10):
        reader, writer = await asyncio.open_connection(target.host, target.port)
        writer.write(
            f"GET {PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        statuses.append((await reader.readline()).split()[1])
        writer.close()
    assert statuses == [b"503"] * 10
    for ws in held:
        ws.abort()


async def test_clients_vanishing_mid_handshake_and_mid_answer(target: Client) -> None:
    """Clients that drop during the handshake or during an answer leave nothing behind."""
    for _ in range(10):
        _, writer = await asyncio.open_connection(target.host, target.port)
        writer.write(b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        writer.transport.abort()
    for _ in range(10):
        ws = await raw(target)
        ws.send_frame(json.dumps(request("vanish " * 50)).encode())
        await ws.read_frame()
        ws.abort()


@pytest.mark.parametrize("code", [1005, 1006, 1015, 999, 1016, 2999, 5000])
async def test_close_codes_that_may_not_be_sent_close_1002(target: Client, code: int) -> None:
    """A client Close with a code RFC 6455 reserves for no wire gets 1002, not a normal close."""
    ws = await raw(target)
    ws.send_frame(struct.pack("!H", code), opcode=0x8)
    async with asyncio.timeout(5):
        got, _ = await ws.read_close()
    assert got == WSCloseCode.PROTOCOL_ERROR
    ws.abort()


async def test_websocket_version_other_than_13_gets_426(target: Client) -> None:
    """Sec-WebSocket-Version 8 is answered 426 with the version the daemon speaks."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "8",
    }
    async with target.get(PATH, headers=headers) as response:
        assert response.status == 426
        assert response.headers["Sec-WebSocket-Version"] == "13"
