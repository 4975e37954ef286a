"""The Realtime dialect on the wire: which clients get it, and its refusals, bounds and drain."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_daemon.dialects.realtime import GA, RealtimeDialect
from realtime_daemon.dialects.realtime.response import Response, Writer
from realtime_daemon.dialects.realtime.wire import Settings
from realtime_daemon.wire.chat import Envelope
from realtime_daemon.wire.chunks import read_envelope
from realtime_daemon.wire.events import Cancel, Refuse, Reply, Submit

from .conftest import (
    PATH,
    Daemon,
    Start,
    StartServer,
    closed_port_url,
    receive_close,
    receive_envelope,
    receive_until,
    request,
)
from .engines import GatedEngine, InBandErrorEngine, TurnCounter
from .frames import Frames
from .test_metrics import closed, requests, scrape

REALTIME = PATH + "?model=echo"


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    """The events up to and including the first of type ``kind``."""
    return await receive_until(ws, kind, key="type")


async def error_of(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    error: dict[str, Any] = (await until(ws, "error"))[-1]["error"]
    return error


async def test_session_created_comes_first_without_a_word_from_the_client(
    client: Daemon,
) -> None:
    """A ?model= upgrade speaks the Realtime API: session.created before anything is read."""
    async with client.ws_connect(REALTIME) as ws:
        created = await receive_envelope(ws)
    assert created["type"] == "session.created"
    assert created["event_id"] == "event_1"
    session = created["session"]
    assert (session["type"], session["model"], session["output_modalities"]) == (
        "realtime",
        "echo",
        ["text"],
    )


async def test_an_upgrade_without_model_speaks_chat_frames(client: Daemon) -> None:
    """No ?model= and no OpenAI-Beta header: today's chat envelopes, unchanged."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hi"))
        envelope = await receive_envelope(ws)
    assert envelope["id"] == "1"
    assert envelope["data"]["choices"][0]["delta"]["content"] == "h"


@pytest.mark.parametrize(
    ("protocol", "path", "first"),
    [("openai-realtime", PATH, "session.created"), ("chat", REALTIME, None)],
)
async def test_protocol_option_forces_a_dialect(
    serve_engine: StartServer, protocol: str, path: str, first: str | None
) -> None:
    """--protocol openai-realtime and --protocol chat override what the upgrade says."""
    daemon = await serve_engine(protocol=protocol)
    async with daemon.ws_connect(path) as ws:
        if first is not None:
            assert (await receive_envelope(ws))["type"] == first
        else:
            await ws.send_json(request("x"))
            assert (await receive_envelope(ws))["id"] == "1"


async def test_beta_header_alone_selects_the_beta_shape(client: Daemon) -> None:
    """OpenAI-Beta: realtime=v1 without ?model=: Realtime, beta names, no model yet."""
    headers = {"OpenAI-Beta": "realtime=v1"}
    async with client.ws_connect(PATH, headers=headers) as ws:
        session = (await receive_envelope(ws))["session"]
        await ws.send_json({"type": "response.create"})
        error = await error_of(ws)
    assert "type" not in session and session["modalities"] == ["text"]
    assert (error["code"], error["param"]) == ("missing_required_parameter", "session.model")


async def test_malformed_json_and_binary_frames_get_errors_not_a_close(client: Daemon) -> None:
    """Unlike the chat dialect (1007, 1003), both are error events; the session goes on."""
    async with client.ws_connect(REALTIME) as ws:
        await ws.send_str("{not json")
        assert (await error_of(ws))["code"] == "invalid_json"
        await ws.send_bytes(b"\x00\x01")
        assert (await error_of(ws))["code"] == "invalid_request"
        await ws.send_str("[1, 2]")
        assert (await error_of(ws))["code"] == "invalid_json"
        await ws.send_json({"type": "conversation.item.create", "item": user("alive")})
        assert (await until(ws, "conversation.item.done"))[-1]["item"]["id"]


async def test_refusals_name_the_field_and_echo_the_event_id(client: Daemon) -> None:
    """Unknown events, unknown fields and bad values: error type, code, param, event_id."""
    async with client.ws_connect(REALTIME) as ws:
        await ws.send_json({"type": "dance", "event_id": "e1"})
        unknown = await error_of(ws)
        await ws.send_json(
            {
                "type": "session.update",
                "event_id": "e2",
                "session": {"instructions": "x", "voltage": 3},
            }
        )
        field = await error_of(ws)
        await ws.send_json(
            {"type": "session.update", "event_id": "e3", "session": {"tool_choice": "sometimes"}}
        )
        value = await error_of(ws)
        await ws.send_json({"type": "session.update", "session": {}})
        session = (await until(ws, "session.updated"))[-1]["session"]
    assert (unknown["type"], unknown["code"], unknown["param"], unknown["event_id"]) == (
        "invalid_request_error",
        "invalid_value",
        "type",
        "e1",
    )
    assert (field["code"], field["param"], field["event_id"]) == (
        "unknown_parameter",
        "session.voltage",
        "e2",
    )
    assert (value["param"], value["event_id"]) == ("session.tool_choice", "e3")
    assert session["instructions"] == ""  # the refused update changed nothing


async def test_conversation_items_are_inserted_retrieved_and_deleted(client: Daemon) -> None:
    """previous_item_id places an item (root: first); retrieve and delete find it by id."""
    async with client.ws_connect(REALTIME) as ws:
        await ws.send_json({"type": "conversation.item.create", "item": user("b")})
        b = (await until(ws, "conversation.item.done"))[-1]
        await ws.send_json(
            {
                "type": "conversation.item.create",
                "previous_item_id": "root",
                "item": {**user("a"), "id": "mine"},
            }
        )
        a = (await until(ws, "conversation.item.done"))[-1]
        await ws.send_json({"type": "conversation.item.retrieve", "item_id": "mine"})
        retrieved = (await until(ws, "conversation.item.retrieved"))[-1]
        await ws.send_json(
            {"type": "conversation.item.create", "previous_item_id": "nope", "item": user("c")}
        )
        missing = await error_of(ws)
        await ws.send_json({"type": "conversation.item.delete", "item_id": b["item"]["id"]})
        deleted = (await until(ws, "conversation.item.deleted"))[-1]
        await ws.send_json({"type": "response.create"})
        done = (await until(ws, "response.done"))[-1]
    assert b["previous_item_id"] is None and a["previous_item_id"] is None
    assert retrieved["item"]["content"] == [{"type": "input_text", "text": "a"}]
    assert (missing["code"], missing["param"]) == ("item_not_found", "previous_item_id")
    assert deleted["item_id"] == b["item"]["id"]
    assert done["response"]["output"][0]["content"][0]["text"] == "a"


async def test_conversation_bound_refuses_items_and_nothing_is_lost(
    serve_engine: StartServer,
) -> None:
    """Past --max-conversation-items a client item is refused; deleting makes room."""
    daemon = await serve_engine(max_conversation_items=2)
    async with daemon.ws_connect(REALTIME) as ws:
        for text in ("one", "two", "three"):
            await ws.send_json({"type": "conversation.item.create", "item": user(text)})
        await until(ws, "conversation.item.done")
        await until(ws, "conversation.item.done")
        full = await error_of(ws)
        await ws.send_json({"type": "conversation.item.delete", "item_id": "item_1"})
        await ws.send_json({"type": "conversation.item.create", "item": user("three")})
        done = (await until(ws, "conversation.item.done"))[-1]
    assert (full["code"], full["param"]) == ("conversation_full", "item")
    assert done["item"]["content"][0]["text"] == "three"


async def test_conversation_byte_bound(serve_engine: StartServer) -> None:
    """An item that would take the conversation past --max-conversation-bytes is refused."""
    daemon = await serve_engine(max_conversation_bytes=300)
    async with daemon.ws_connect(REALTIME) as ws:
        await ws.send_json({"type": "conversation.item.create", "item": user("x" * 400)})
        assert (await error_of(ws))["code"] == "conversation_full"


async def test_a_failed_request_ends_its_response_as_failed(proxy: Start) -> None:
    """An unreachable upstream: response.done failed with the error; the session goes on."""
    daemon = await proxy(closed_port_url())
    async with daemon.ws_connect(PATH + "?model=m") as ws:
        await ws.send_json({"type": "response.create"})
        events = await until(ws, "response.done")
        await ws.send_json({"type": "session.update", "session": {}})
        assert (await until(ws, "session.updated"))[-1]["type"] == "session.updated"
    response = events[-1]["response"]
    assert [e["type"] for e in events] == ["session.created", "response.created", "response.done"]
    assert response["status"] == "failed"
    error = response["status_details"]["error"]
    assert (error["type"], error["code"]) == ("server_error", "upstream_unreachable")


async def test_an_engine_error_envelope_fails_the_response(serve_engine: StartServer) -> None:
    """An engine's own error envelope ends the response as failed, with its message."""
    daemon = await serve_engine(InBandErrorEngine())
    async with daemon.ws_connect(REALTIME) as ws:
        await ws.send_json({"type": "response.create"})
        first = (await until(ws, "response.done"))[-1]["response"]
        await ws.send_json({"type": "conversation.item.create", "item": user("ok")})
        await ws.send_json({"type": "response.create"})
        second = (await until(ws, "response.done"))[-1]["response"]
    assert first["status"] == "failed"
    assert first["status_details"]["error"]["message"] == "upstream said no"
    assert second["status"] == "completed"


async def test_drain_says_so_then_closes_1001(serve_engine: StartServer) -> None:
    """On shutdown: an error event (shutting_down), the running response ends, then 1001."""
    engine = GatedEngine()
    daemon = await serve_engine(engine, shutdown_timeout=5)
    async with daemon.ws_connect(REALTIME) as ws:
        await ws.send_json({"type": "conversation.item.create", "item": user("last")})
        await ws.send_json({"type": "response.create"})
        await until(ws, "response.created")
        shutdown = asyncio.create_task(daemon.app.shutdown())
        notice = await error_of(ws)
        await ws.send_json({"type": "response.create", "response": {"conversation": "none"}})
        refused = await error_of(ws)
        engine.gate.set()
        done = (await until(ws, "response.done"))[-1]["response"]
        code, _ = await receive_close(ws)
        await shutdown
    assert (notice["type"], notice["code"]) == ("server_error", "shutting_down")
    assert refused["code"] == "shutting_down"
    assert done["status"] == "completed"
    assert code == aiohttp.WSCloseCode.GOING_AWAY


async def test_responses_are_counted_by_dialect(client: Daemon) -> None:
    """realtime_daemon_requests_total counts a response under dialect openai-realtime."""
    async with client.ws_connect(REALTIME) as ws:
        await ws.send_json({"type": "response.create"})
        await until(ws, "response.done")
    await closed(client)
    samples = await scrape(client)
    assert requests(samples, "completed", dialect="openai-realtime") == 1
    assert requests(samples, "completed", dialect="chat") == 0


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_names = st.sampled_from(
    [
        "type",
        "role",
        "content",
        "text",
        "id",
        "item_reference",
        "message",
        "function_call",
        "input",
        "conversation",
        "tools",
        "name",
        "call_id",
        "output",
        "arguments",
        "user",
        "none",
    ]
)
_any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | _names,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=4),
    max_leaves=12,
)
_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "session.update",
                "conversation.item.create",
                "response.create",
                "response.cancel",
                "conversation.item.delete",
                "conversation.item.retrieve",
                "input_audio_buffer.append",
            ]
        )
        | _any
    },
    optional={
        "session": _json | _any,
        "item": _any,
        "response": _any,
        "item_id": _json,
        "response_id": _json,
        "event_id": _json,
        "previous_item_id": _json,
    },
)


@settings(max_examples=300)
@given(st.lists(_events, max_size=6))
def test_any_event_shaped_frame_becomes_an_event(frames: list[dict[str, Any]]) -> None:
    """Whatever the fields hold, a frame becomes an event (a refusal at worst), never raises."""
    dialect = RealtimeDialect(
        Frames(),
        "s",
        names=GA,
        model="m",
        models=None,
        concurrency_limit=4,
        max_items=10,
        max_bytes=10_000,
    )
    for frame in frames:
        event = dialect.receive(json.dumps(frame).encode())
        assert isinstance(event, Submit | Cancel | Reply | Refuse)


async def test_a_session_long_engine_answers_realtime_responses(
    serve_engine: StartServer,
) -> None:
    """An engine of the generate() interface serves Realtime responses without knowing it."""
    engine = TurnCounter()
    daemon = await serve_engine(engine)
    async with daemon.ws_connect(REALTIME) as ws:
        texts = []
        for text in ("a", "b"):
            await ws.send_json({"type": "conversation.item.create", "item": user(text)})
            await ws.send_json({"type": "response.create"})
            done = (await until(ws, "response.done"))[-1]["response"]
            texts.append(done["output"][0]["content"][0]["text"])
    assert texts == ["turn 1: a", "turn 2: b"]
    assert engine.sessions == 1


async def test_drain_deadline_fails_the_running_response(serve_engine: StartServer) -> None:
    """A response still running at the shutdown deadline ends failed (shutting_down), then 1001."""
    engine = GatedEngine()
    daemon = await serve_engine(engine, shutdown_timeout=0.05)
    async with daemon.ws_connect(REALTIME) as ws:
        await ws.send_json({"type": "response.create"})
        await until(ws, "response.created")
        await daemon.app.shutdown()
        events = await until(ws, "response.done")
        code, _ = await receive_close(ws)
    response = events[-1]["response"]
    assert response["status"] == "failed"
    assert response["status_details"]["error"]["code"] == "shutting_down"
    assert code == aiohttp.WSCloseCode.GOING_AWAY


async def test_rate_limit_is_an_error_event(serve_engine: StartServer) -> None:
    """Over --max-requests-per-second, a Realtime event is refused with rate_limited."""
    daemon = await serve_engine(max_requests_per_second=1)
    async with daemon.ws_connect(REALTIME) as ws:
        await ws.send_json({"type": "session.update", "session": {}})
        await ws.send_json({"type": "session.update", "session": {}, "event_id": "e"})
        events = await until(ws, "error")
    assert [e["type"] for e in events] == ["session.created", "session.updated", "error"]
    assert events[-1]["error"]["code"] == "rate_limited"


async def test_events_are_answered_in_arrival_order(client: Daemon) -> None:
    """A refusal of a later event never overtakes the answer to an earlier one."""
    async with client.ws_connect(REALTIME) as ws:
        frames = [
            {"type": "conversation.item.create", "item": user("hi")},
            {"type": "response.create"},
            {"type": "dance"},
            {"type": "session.update", "session": {"instructions": "x"}},
        ]
        for frame in frames:
            await ws.send_json(frame)
        events = await until(ws, "session.updated")
    kinds = [e["type"] for e in events]
    assert kinds.index("conversation.item.done") < kinds.index("response.created")
    assert kinds.index("response.created") < kinds.index("error") < kinds.index("session.updated")


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [
        ("stop", "completed", None),
        ("tool_calls", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
    ],
)
def test_finish_reasons_map_to_response_status(
    finish: str, status: str, reason: str | None
) -> None:
    """A relayed chunk's finish_reason decides response.done's status and reason."""
    frames = Frames()
    response = Response("resp_1", GA, Writer(frames), Settings(), None, "c", None)
    response.start()
    chunk = {
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
    read_envelope(Envelope(data=msgspec.Raw(json.dumps(chunk).encode())), response)
    response.complete()
    done = frames.events[-1]["response"]
    assert (done["status"], (done["status_details"] or {}).get("reason")) == (status, reason)
    assert done["usage"]["input_tokens"] == 2 and done["usage"]["output_tokens"] == 1
    assert done["output"][0]["content"][0]["text"] == "hi"
