"""Close codes and reasons: every way a connection ends."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import WSCloseCode

from .conftest import (
    PATH,
    Client,
    StartServer,
    receive_answer,
    receive_close,
    receive_envelope,
    request,
)
from .engines import FailingEngine


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ("not json", "JSON is malformed"),
        ('{"model": "m", "messages": [', "truncated"),
        ("[1, 2]", "Expected `object`, got `array`"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "missing required field `model`"),
        ('{"model": "m"}', "missing required field `messages`"),
        ('{"model": 7, "messages": [{"role": "user"}]}', "`$.model`"),
        ('{"model": "m", "messages": [{"content": "x"}]}', "`role`"),
        ('{"model": "m", "messages": [{"role": "user"}], "temperature": "hot"}', "temperature"),
    ],
)
async def test_malformed_frame_closes_1007_naming_the_problem(
    client: Client, frame: str, detail: str
) -> None:
    """A frame that is not a chat-completion request closes 1007 with what was wrong."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_str(frame)
        code, reason = await receive_close(ws)
    assert code == WSCloseCode.INVALID_TEXT
    assert reason.startswith("malformed JSON frame: ")
    assert detail in reason


async def test_invalid_utf8_in_text_frame_closes_1007(client: Client) -> None:
    """A Text frame that is not UTF-8 closes 1007 like any malformed frame."""
    async with client.ws_connect(PATH) as ws:
        payload = b'{"model": "\xff", "messages": []}'
        await ws.send_frame(payload, aiohttp.WSMsgType.TEXT)
        code, reason = await receive_close(ws)
    assert code == WSCloseCode.INVALID_TEXT
    assert reason == "malformed JSON frame: invalid UTF-8 in text frame"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"model": "ok", "messages": [{"role": "user", "content": "q"}], "x\xff": 1}',
        b'{"model": "ok", "messages": [{"role": "user", "content": "q"}], "x": ["\xc3"]}',
        b'{"type": "session.update", "session": {}, "note": "\xed\xa0\x80"}',
    ],
)
async def test_invalid_utf8_anywhere_in_a_frame_closes_1007(client: Client, payload: bytes) -> None:
    """Invalid UTF-8 in a field the daemon does not read still closes 1007 (RFC 6455 8.1)."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_frame(payload, aiohttp.WSMsgType.TEXT)
        code, reason = await receive_close(ws)
    assert code == WSCloseCode.INVALID_TEXT
    assert reason == "malformed JSON frame: invalid UTF-8 in text frame"


async def test_close_reason_fits_a_control_frame(client: Client) -> None:
    """A long error still closes with a reason of at most 123 UTF-8 bytes."""
    frame = '{"model": "m", "messages": [{"role": "user"}], "%s": 1, "n": "é"}' % ("é" * 300)
    async with client.ws_connect(PATH) as ws:
        await ws.send_str(frame)
        code, reason = await receive_close(ws)
    assert code == WSCloseCode.INVALID_TEXT
    assert reason.startswith("malformed JSON frame")
    assert len(reason.encode()) <= 123


async def test_binary_frame_closes_1003(client: Client) -> None:
    """A binary frame closes 1003 "binary frames not supported"."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_bytes(b'{"model": "m", "messages": []}')
        assert await receive_close(ws) == (
            WSCloseCode.UNSUPPORTED_DATA,
            "binary frames not supported",
        )


async def test_oversized_message_closes_1009(serve_engine: StartServer) -> None:
    """A message over max_message_size closes 1009."""
    client = await serve_engine(max_message_size=1024)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("x" * 2000))
        code, _ = await receive_close(ws)
    assert code == WSCloseCode.MESSAGE_TOO_BIG


async def test_size_limit_is_inclusive(serve_engine: StartServer) -> None:
    """A message of exactly max_message_size bytes is answered; one byte more closes 1009."""
    body = '{"model":"m","messages":[{"role":"user","content":"%s"}]}'
    limit = len(body % "") + 10
    client = await serve_engine(max_message_size=limit)
    async with client.ws_connect(PATH) as ws:
        await ws.send_str(body % ("y" * 10))
        assert len(await receive_answer(ws)) == 11
        await ws.send_str(body % ("y" * 11))
        code, _ = await receive_close(ws)
    assert code == WSCloseCode.MESSAGE_TOO_BIG


async def test_client_close_is_answered_with_1000(client: Client) -> None:
    """When the client closes, the server answers with its own Close 1000."""
    ws = await client.ws_connect(PATH)
    await ws.send_json(request("hi"))
    await receive_answer(ws)
    await ws.close(code=WSCloseCode.GOING_AWAY)
    assert ws.close_code == WSCloseCode.OK


async def test_engine_failing_to_start_closes_1011(serve_engine: StartServer) -> None:
    """An engine that raises before its first envelope closes 1011 "engine error: ..."."""
    client = await serve_engine(FailingEngine(good_chunks=0, message="no model loaded"))
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hi"))
        assert await receive_close(ws) == (
            WSCloseCode.INTERNAL_ERROR,
            "engine error: no model loaded",
        )


async def test_engine_failing_mid_stream_sends_error_envelope_then_1011(
    serve_engine: StartServer,
) -> None:
    """An engine that raises mid-stream sends an error envelope, then closes 1011."""
    client = await serve_engine(FailingEngine(good_chunks=2, message="GPU fell off"))
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hello"))
        assert (await receive_envelope(ws))["id"] == "1"
        assert (await receive_envelope(ws))["id"] == "2"
        assert await receive_envelope(ws) == {
            "id": "3",
            "event": "error",
            "comment": ["GPU fell off"],
        }
        assert await receive_close(ws) == (
            WSCloseCode.INTERNAL_ERROR,
            "engine error: GPU fell off",
        )
