"""The Realtime dialect driven by the official OpenAI SDK's realtime clients, unchanged."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI

from realtime_daemon.config import ModelConfig

from .conftest import PATH, Daemon, Start, StartServer
from .engines import GatedEngine
from .upstream import Upstream, started

USER = {"type": "message", "role": "user"}


def user(text: str) -> dict[str, Any]:
    return {**USER, "content": [{"type": "input_text", "text": text}]}


def sdk(daemon: Daemon, api_key: str = "unused") -> AsyncOpenAI:
    base = f"{daemon.host}:{daemon.port}/v1"
    return AsyncOpenAI(
        api_key=api_key, base_url=f"http://{base}", websocket_base_url=f"ws://{base}"
    )


async def events_until(conn: Any, kind: str) -> list[Any]:
    """The events up to and including the first of type ``kind``."""
    events = []
    async with asyncio.timeout(5):
        async for event in conn:
            events.append(event)
            if event.type == kind:
                return events
    raise AssertionError(f"connection ended before {kind}")


async def answer(conn: Any, **response: Any) -> list[Any]:
    """Ask for a response; its events from ``response.created`` to ``response.done``."""
    await conn.response.create(**({"response": response} if response else {}))
    events = await events_until(conn, "response.done")
    return events[next(i for i, e in enumerate(events) if e.type == "response.created") :]


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async for running in started(1):
        yield running[0]


async def test_two_turn_conversation_with_the_echo_engine(client: Daemon) -> None:
    """Two turns: the GA event sequence, exact texts, one id per response and item."""
    async with sdk(client).realtime.connect(model="echo") as conn:
        first = await conn.recv()
        assert first.type == "session.created"
        assert first.session.model == "echo"
        await conn.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief."}
        )
        updated = await conn.recv()
        assert updated.type == "session.updated"
        assert updated.session.instructions == "Be brief."
        for text in ("Hello there", "And again"):
            await conn.conversation.item.create(item=user(text))
            added, done = await conn.recv(), await conn.recv()
            assert (added.type, done.type) == ("conversation.item.added", "conversation.item.done")
            events = await answer(conn)
            assert [e.type for e in events] == [
                "response.created",
                "conversation.item.added",
                "response.output_item.added",
                "response.content_part.added",
                *["response.output_text.delta"] * len(text),
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "conversation.item.done",
                "response.done",
            ]
            assert text_of(events) == text
            response_id = events[0].response.id
            item_id = events[1].item.id
            assert events[1].previous_item_id == added.item.id
            for event in events[2:-2]:
                assert event.response_id == response_id
                assert getattr(event, "item_id", item_id) == item_id
            done_event = events[-1].response
            assert done_event.id == response_id
            assert done_event.status == "completed"
            assert done_event.output[0].content[0].text == text
            assert done_event.usage.output_tokens == len(text)
            assert events[-5].text == text
        ids = [int(e.event_id.removeprefix("event_")) for e in events]
        assert ids == sorted(ids)


async def test_a_conversation_through_an_openai_compatible_upstream(
    proxy: Start, upstream: Upstream
) -> None:
    """The openai engine gets the conversation as chat messages and its words come back."""
    client = await proxy(upstream)
    async with sdk(client).realtime.connect(model="m") as conn:
        await conn.session.update(session={"type": "realtime", "instructions": "Be terse."})
        await conn.conversation.item.create(item=user("one two"))
        first = await answer(conn)
        await conn.conversation.item.create(item=user("three four five"))
        second = await answer(conn, max_output_tokens=50, instructions="Shout.")
    assert text_of(first) == "onetwo"
    assert text_of(second) == "threefourfive"
    assert second[-1].response.usage.input_tokens == 3
    assert second[-1].response.usage.output_tokens == 3
    assert upstream.bodies[0]["messages"][0] == {"role": "system", "content": "Be terse."}
    body = upstream.bodies[1]
    assert body["messages"] == [
        {"role": "system", "content": "Shout."},  # this response's own instructions
        {"role": "user", "content": "one two"},
        {"role": "assistant", "content": "onetwo"},
        {"role": "user", "content": "three four five"},
    ]
    assert body["model"] == "m"
    assert body["stream"] is True
    assert body["max_tokens"] == 50


async def test_cancel_mid_response_closes_the_upstream_request(
    proxy: Start, upstream: Upstream
) -> None:
    """response.cancel ends the response as cancelled, and the upstream sees it closed."""
    upstream.mode = "endless"
    client = await proxy(upstream)
    async with sdk(client).realtime.connect(model="m") as conn:
        await conn.conversation.item.create(item=user("go on"))
        await conn.response.create()
        events = await events_until(conn, "response.output_text.delta")
        await conn.response.cancel()
        events = await events_until(conn, "response.done")
        done = events[-1].response
        assert done.status == "cancelled"
        assert done.status_details.reason == "client_cancelled"
        assert done.output[0].status == "incomplete"
        async with asyncio.timeout(2):
            await upstream.disconnected.wait()
        # The session goes on.
        upstream.mode = "ok"
        await conn.conversation.item.create(item=user("again"))
        assert text_of(await answer(conn)) == "again"


async def test_cancel_when_idle_is_an_error_and_the_session_goes_on(client: Daemon) -> None:
    """With no response running, response.cancel gets response_cancel_not_active."""
    async with sdk(client).realtime.connect(model="echo") as conn:
        await conn.send({"type": "response.cancel", "event_id": "evt_c"})
        error = (await events_until(conn, "error"))[-1].error
        assert error.code == "response_cancel_not_active"
        assert error.event_id == "evt_c"
        await conn.conversation.item.create(item=user("still here"))
        assert text_of(await answer(conn)) == "still here"


async def test_second_in_band_response_is_refused_while_one_runs(
    serve_engine: StartServer,
) -> None:
    """A second in-band response.create gets conversation_already_has_active_response."""
    engine = GatedEngine()
    daemon = await serve_engine(engine)
    async with sdk(daemon).realtime.connect(model="echo") as conn:
        await conn.conversation.item.create(item=user("first"))
        await conn.response.create()
        created = (await events_until(conn, "response.created"))[-1]
        await conn.send({"type": "response.create", "event_id": "evt_2"})
        error = (await events_until(conn, "error"))[-1].error
        assert error.code == "conversation_already_has_active_response"
        assert created.response.id in error.message
        assert error.event_id == "evt_2"
        engine.gate.set()
        events = await events_until(conn, "response.done")
        assert text_of(events) == "first"
        assert events[-1].response.status == "completed"


async def test_out_of_band_responses_run_beside_the_conversation(
    serve_engine: StartServer,
) -> None:
    """conversation "none": its own input, no conversation item, null conversation_id."""
    engine = GatedEngine()
    daemon = await serve_engine(engine)
    async with sdk(daemon).realtime.connect(model="echo") as conn:
        await conn.conversation.item.create(item=user("in band"))
        await conn.response.create()
        await events_until(conn, "response.created")
        await conn.response.create(
            response={
                "conversation": "none",
                "input": [user("out of band")],
                "metadata": {"topic": "side"},
            }
        )
        engine.gate.set()
        done = []
        events: list[Any] = []
        while len(done) < 2:
            events += await events_until(conn, "response.done")
            done.append(events[-1].response)
        side = next(r for r in done if r.metadata == {"topic": "side"})
        main = next(r for r in done if r.metadata is None)
        assert side.conversation_id is None
        assert main.conversation_id is not None
        assert side.output[0].content[0].text == "out of band"
        assert main.output[0].content[0].text == "in band"
        added = [e.item.id for e in events if e.type == "conversation.item.added"]
        assert side.output[0].id not in added
        assert main.output[0].id in added


async def test_function_call_round_trip(proxy: Start, upstream: Upstream) -> None:
    """Streamed tool_calls become a function_call item; its output continues the turn."""
    client = await proxy(upstream)
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    async with sdk(client).realtime.connect(model="m") as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "tools": [tool],
                "tool_choice": {"type": "function", "name": "get_weather"},
            }
        )
        await conn.conversation.item.create(item=user("weather in Oslo"))
        upstream.mode = "tool_call"
        events = await answer(conn)
        deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
        args_done = next(e for e in events if e.type == "response.function_call_arguments.done")
        call = events[-1].response.output[0]
        assert deltas == ['{"city"', ': "Os', 'lo"}']
        assert args_done.arguments == '{"city": "Oslo"}'
        assert args_done.name == "get_weather"
        assert (call.type, call.name, call.call_id) == ("function_call", "get_weather", "call_up1")
        assert call.arguments == '{"city": "Oslo"}'
        assert events[-1].response.status == "completed"
        assert upstream.bodies[0]["tools"] == [
            {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
        ]
        assert upstream.bodies[0]["tool_choice"] == {
            "type": "function",
            "function": {"name": "get_weather"},
        }
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": "call_up1", "output": "minus three"}
        )
        upstream.mode = "ok"
        assert text_of(await answer(conn)) == "minusthree"
    assert upstream.bodies[1]["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_up1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_up1", "content": "minus three"},
    ]


async def test_audio_is_refused_and_the_session_goes_on(client: Daemon) -> None:
    """Audio events, audio output and audio content get unsupported_modality with param."""
    async with sdk(client).realtime.connect(model="echo") as conn:
        await conn.input_audio_buffer.append(audio="AAAA")
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        await conn.conversation.item.create(
            item={**USER, "content": [{"type": "input_audio", "audio": "AAAA"}]}
        )
        errors = []
        for _ in range(3):
            errors.append((await events_until(conn, "error"))[-1].error)
        assert [(e.code, e.param) for e in errors] == [
            ("unsupported_modality", "type"),
            ("unsupported_modality", "session.output_modalities"),
            ("unsupported_modality", "item.content[0].type"),
        ]
        await conn.conversation.item.create(item=user("text works"))
        assert text_of(await answer(conn)) == "text works"


async def test_unknown_model_is_model_not_found(serve_engine: StartServer) -> None:
    """An unknown ?model= is refused in band; session.update can pick a known one."""
    daemon = await serve_engine(engine=None, models=(ModelConfig(name="known", engine="echo"),))
    async with sdk(daemon).realtime.connect(model="nope") as conn:
        assert (await conn.recv()).type == "session.created"
        error = (await conn.recv()).error
        assert (error.code, error.param) == ("model_not_found", "model")
        await conn.conversation.item.create(item=user("hi"))
        await conn.response.create()
        assert (await events_until(conn, "error"))[-1].error.code == "model_not_found"
        await conn.session.update(session={"type": "realtime", "model": "elsewhere"})
        assert (await events_until(conn, "error"))[-1].error.param == "session.model"
        await conn.session.update(session={"type": "realtime", "model": "known"})
        assert (await events_until(conn, "session.updated"))[-1].session.model == "known"
        assert text_of(await answer(conn)) == "hi"


async def test_the_beta_client_gets_the_beta_names(client: Daemon) -> None:
    """client.beta.realtime.connect sends OpenAI-Beta: realtime=v1 and gets beta events."""
    async with sdk(client).beta.realtime.connect(model="echo") as conn:
        created = await conn.recv()
        assert created.session.modalities == ["text"]
        await conn.session.update(session={"modalities": ["text"], "temperature": 0.5})
        assert (await conn.recv()).session.temperature == 0.5
        await conn.conversation.item.create(
            item={**USER, "content": [{"type": "input_text", "text": "beta"}]}
        )
        assert (await conn.recv()).type == "conversation.item.created"
        await conn.response.create()
        events = await events_until(conn, "response.done")
    kinds = [e.type for e in events]
    assert "response.text.delta" in kinds and "response.text.done" in kinds
    assert "response.output_text.delta" not in kinds
    assert "conversation.item.done" not in kinds
    assert "".join(e.delta for e in events if e.type == "response.text.delta") == "beta"
    assert events[-1].response.output[0].content[0].type == "text"


@pytest.fixture
async def guarded(serve_engine: StartServer, tmp_path: Path) -> Daemon:
    tokens = tmp_path / "tokens"
    tokens.write_text("sesame\n")
    return await serve_engine(auth_token_file=str(tokens))


async def test_auth_by_bearer_header(guarded: Daemon) -> None:
    """The SDK's api_key is the bearer token; a wrong one is refused before the upgrade."""
    async with sdk(guarded, api_key="sesame").realtime.connect(model="echo") as conn:
        assert (await conn.recv()).type == "session.created"
    with pytest.raises(Exception, match="401"):
        async with sdk(guarded, api_key="wrong").realtime.connect(model="echo") as conn:
            await conn.recv()


async def test_auth_by_browser_subprotocols(guarded: Daemon) -> None:
    """Browsers' realtime + openai-insecure-api-key.<token>: let in, realtime echoed."""
    protocols = ("realtime", "openai-insecure-api-key.sesame")
    async with guarded.ws_connect(PATH + "?model=echo", protocols=protocols) as ws:
        assert ws.protocol == "realtime"
        assert (await ws.receive_json())["type"] == "session.created"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await guarded.ws_connect(
            PATH + "?model=echo", protocols=("realtime", "openai-insecure-api-key.wrong")
        )
    assert refused.value.status == 401


EXAMPLE = Path(__file__).parent.parent / "examples" / "realtime_chat.py"


async def run_example(daemon: Daemon, model: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        f"{daemon.host}:{daemon.port}",
        model,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def test_the_documented_example_is_the_example_file() -> None:
    """docs/openai-realtime.md shows examples/realtime_chat.py as it is."""
    doc = (Path(__file__).parent.parent / "docs" / "openai-realtime.md").read_text()
    assert EXAMPLE.read_text() in doc


async def test_the_example_runs_against_the_echo_engine(client: Daemon) -> None:
    """The documented example, run as written, prints each echoed answer and its status."""
    out = await run_example(client, "echo")
    assert out == "What is a WebSocket?  [completed]\nAnd a daemon?  [completed]\n"


async def test_the_example_runs_against_the_openai_engine(proxy: Start, upstream: Upstream) -> None:
    """The same example through --engine openai: the upstream's words, the whole conversation."""
    out = await run_example(await proxy(upstream), "served-model")
    assert out == "WhatisaWebSocket?  [completed]\nAndadaemon?  [completed]\n"
    assert [m["role"] for m in upstream.bodies[1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
