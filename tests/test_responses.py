"""The Responses API's WebSocket mode, driven by the official SDK's ``responses.connect()``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from .conftest import Daemon, Start, StartServer
from .upstream import Upstream

RESPONSES = "/v1/responses"


def sdk(daemon: Daemon) -> AsyncOpenAI:
    base = f"{daemon.host}:{daemon.port}/v1"
    return AsyncOpenAI(
        api_key="unused", base_url=f"http://{base}", websocket_base_url=f"ws://{base}"
    )


async def until_end(conn: Any) -> list[Any]:
    """A response's events, up to its last (completed, incomplete or failed), or an error."""
    events = []
    async with asyncio.timeout(5):
        async for event in conn:
            events.append(event)
            if event.type in ("response.completed", "response.incomplete", "response.failed"):
                return events
            if event.type == "error":
                return events
    raise AssertionError("connection ended before the response did")


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "input_text", "text": text}]}]


@pytest.fixture
async def conn(client: Daemon) -> AsyncIterator[Any]:
    async with sdk(client).responses.connect() as connection:
        yield connection


async def test_a_text_turn_streams_the_sse_events_in_order(conn: Any) -> None:
    """One create: the SSE stream's events in order, numbered, the text the echo engine's,
    and the Response object the SDK parses, with the request's fields echoed."""
    await conn.response.create(model="echo", input="Hello there", temperature=0.5)
    events = await until_end(conn)
    kinds = [e.type for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert text_of(events) == "Hello there"
    done = events[-1].response
    assert done.status == "completed"
    assert done.id.startswith("resp_") and done.model == "echo"
    assert done.temperature == 0.5
    assert done.output[0].type == "message"
    assert done.output[0].content[0].text == "Hello there"
    assert done.output_text == "Hello there"
    assert done.usage is not None
    assert events[0].response.id == done.id and events[0].response.status == "in_progress"


async def test_a_chain_of_five_turns_sends_only_new_input(
    serve_engine: StartServer,
) -> None:
    """Five turns chained by previous_response_id, each sending its new input only: the
    engine gets the whole conversation each time (earlier answers included)."""
    from .engines import RecordingEngine

    engine = RecordingEngine()
    daemon = await serve_engine(engine)
    async with sdk(daemon).responses.connect() as conn:
        previous = None
        for turn in range(5):
            await conn.response.create(
                model="m", input=user(f"turn {turn}"), previous_response_id=previous
            )
            events = await until_end(conn)
            assert events[-1].type == "response.completed", events[-1]
            previous = events[-1].response.id
    messages = engine.bodies[-1]["messages"]
    assert (
        messages
        == [
            message
            for turn in range(5)
            for message in (
                {"role": "user", "content": f"turn {turn}"},
                {"role": "assistant", "content": f"turn {turn}"},
            )
        ][:-1]
    )


async def test_generate_false_warms_up_and_a_turn_chains_from_it(conn: Any) -> None:
    """generate: false: created then completed with no output, nothing generated; a turn
    chained from it answers from the warmed-up input too."""
    await conn.response.create(
        model="echo", input=user("context "), generate=False, instructions="be brief"
    )
    warm = await until_end(conn)
    assert [e.type for e in warm] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    assert warm[-1].response.output == []
    await conn.response.create(
        model="echo", input=user("question"), previous_response_id=warm[-1].response.id
    )
    events = await until_end(conn)
    assert events[-1].type == "response.completed"
    assert text_of(events) == "question"


async def test_an_unknown_previous_response_is_an_error_and_the_connection_goes_on(
    conn: Any,
) -> None:
    """previous_response_not_found names its param; the next create is answered."""
    await conn.response.create(model="echo", input="x", previous_response_id="resp_nope")
    events = await until_end(conn)
    assert [e.type for e in events] == ["error"]
    error = events[0].error
    assert (error.code, error.param) == ("previous_response_not_found", "previous_response_id")
    await conn.response.create(model="echo", input="still here")
    assert text_of(await until_end(conn)) == "still here"


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "response.nope"}, "invalid_value", "type"),
        ({"type": "response.create", "input": "x"}, "missing_required_parameter", "model"),
        ({"type": "response.create", "model": "echo", "input": 3}, "invalid_type", "input"),
        (
            {"type": "response.create", "model": "echo", "temperature": "hot"},
            "invalid_type",
            "temperature",
        ),
        (
            {"type": "response.create", "model": "echo", "tools": [{"type": "web_search"}]},
            "unsupported_tool",
            "tools[0].type",
        ),
        (
            {"type": "response.create", "model": "echo", "input": [{"type": "reasoning"}]},
            "invalid_value",
            "input[0].type",
        ),
        (
            {"type": "response.create", "model": "echo", "background": True},
            "unsupported_parameter",
            "background",
        ),
        (
            {"type": "response.steer", "previous_response_id": "r", "input": "x"},
            "unsupported_event",
            "type",
        ),
    ],
)
async def test_a_bad_event_is_an_error_naming_its_param(
    client: Daemon, event: dict[str, Any], code: str, param: str
) -> None:
    """Each bad event gets one error event with its code and param; the connection is
    usable after."""
    async with client.ws_connect(RESPONSES) as ws:
        await ws.send_json(event)
        async with asyncio.timeout(2):
            error = json.loads((await ws.receive()).data)
        assert error["type"] == "error"
        assert (error["error"]["code"], error["error"]["param"]) == (code, param)
        assert error["status"] == 400
        await ws.send_json({"type": "response.create", "model": "echo", "input": "ok"})
        async with asyncio.timeout(2):
            while (last := json.loads((await ws.receive()).data))["type"] != "response.completed":
                pass
        assert last["response"]["output"][0]["content"][0]["text"] == "ok"


async def test_malformed_json_is_an_error_event(client: Daemon) -> None:
    """A frame that is not JSON gets an error event (invalid_json), not a close."""
    async with client.ws_connect(RESPONSES) as ws:
        await ws.send_str("{nope")
        async with asyncio.timeout(2):
            error = json.loads((await ws.receive()).data)
        assert error["error"]["code"] == "invalid_json"


async def test_a_frame_over_the_message_size_closes_1009(serve_engine: StartServer) -> None:
    """--max-message-size holds on this path as on every other: 1009."""
    daemon = await serve_engine(max_message_size=1000)
    async with daemon.ws_connect(RESPONSES) as ws:
        await ws.send_json({"type": "response.create", "model": "echo", "input": "x" * 2000})
        async with asyncio.timeout(2):
            message = await ws.receive()
        assert message.type.name == "CLOSE"
        assert ws.close_code == 1009


async def test_input_past_the_conversation_bounds_is_refused(serve_engine: StartServer) -> None:
    """A chain that would pass --max-conversation-items is conversation_full (param input)."""
    daemon = await serve_engine(max_conversation_items=2)
    async with sdk(daemon).responses.connect() as conn:
        await conn.response.create(model="echo", input=user("a"))
        first = await until_end(conn)
        await conn.response.create(
            model="echo", input=user("b"), previous_response_id=first[-1].response.id
        )
        events = await until_end(conn)
    assert events[-1].type == "error"
    assert (events[-1].error.code, events[-1].error.param) == ("conversation_full", "input")


async def test_a_second_create_while_one_runs_is_refused_and_the_first_goes_on(
    serve_engine: StartServer,
) -> None:
    """One response at a time on a lane: the second create is an error; the first ends
    completed with all its text."""
    from .engines import GatedEngine

    engine = GatedEngine()
    daemon = await serve_engine(engine)
    async with sdk(daemon).responses.connect() as conn:
        await conn.response.create(model="m", input="first answer")
        await conn.response.create(model="m", input="second")
        events = []
        async with asyncio.timeout(5):
            async for event in conn:
                events.append(event)
                if event.type == "error":
                    engine.gate.set()
                if event.type == "response.completed":
                    break
    errors = [e for e in events if e.type == "error"]
    assert [e.error.code for e in errors] == ["response_already_in_progress"]
    assert events[-1].response.output_text == "first answer"


async def test_a_tool_loop_through_an_openai_compatible_upstream(
    proxy: Start, upstream: Upstream
) -> None:
    """The openai engine behind the dialect: a streamed tool call becomes a function_call
    item; its output, chained, goes upstream as a tool message; the answer is the upstream's."""
    daemon = await proxy(upstream)
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "The weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    async with sdk(daemon).responses.connect() as conn:
        upstream.mode = "tool_call"
        await conn.response.create(model="served", input=user("weather in Oslo"), tools=[tool])
        events = await until_end(conn)
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds
        call = events[-1].response.output[0]
        assert (call.type, call.name, call.arguments) == (
            "function_call",
            "get_weather",
            '{"city": "Oslo"}',
        )
        upstream.mode = "ok"
        await conn.response.create(
            model="served",
            input=[
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny now"}
            ],
            previous_response_id=events[-1].response.id,
            tools=[tool],
        )
        answer = await until_end(conn)
    # The test upstream streams the last message's words: "sunny", "now".
    assert text_of(answer) == answer[-1].response.output_text == "sunnynow"
    assert upstream.bodies[0]["tools"][0]["function"]["name"] == "get_weather"
    messages = upstream.bodies[1]["messages"]
    assert messages[0] == {"role": "user", "content": "weather in Oslo"}
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}'
    assert messages[2] == {"role": "tool", "tool_call_id": "call_up1", "content": "sunny now"}


async def test_the_session_limit_ends_each_dialect_with_1001(serve_engine: StartServer) -> None:
    """--max-session-duration: Responses gets websocket_connection_limit_reached, Realtime
    session_expired, chat frames only the close; each closes 1001 with the reason."""
    daemon = await serve_engine(max_session_duration=0.3)
    reason = "session expired: --max-session-duration reached"
    async with daemon.ws_connect(RESPONSES) as ws:
        async with asyncio.timeout(5):
            error = json.loads((await ws.receive()).data)
            closing = await ws.receive()
        assert error["error"]["code"] == "websocket_connection_limit_reached"
        assert (closing.type.name, ws.close_code, closing.extra) == ("CLOSE", 1001, reason)
    async with daemon.ws_connect("/v1/realtime?model=echo") as ws:
        async with asyncio.timeout(5):
            created = json.loads((await ws.receive()).data)
            error = json.loads((await ws.receive()).data)
            closing = await ws.receive()
        assert created["type"] == "session.created"
        assert error["error"]["code"] == "session_expired"
        assert (ws.close_code, closing.extra) == (1001, reason)
    async with daemon.ws_connect("/v1/realtime") as ws:
        async with asyncio.timeout(5):
            closing = await ws.receive()
        assert (closing.type.name, ws.close_code, closing.extra) == ("CLOSE", 1001, reason)


async def test_lanes_run_side_by_side_and_echo_their_stream_id(serve_engine: StartServer) -> None:
    """Two creates on two lanes (stream_id) both start before either ends; every event of
    each names its lane."""
    from .engines import GatedEngine

    engine = GatedEngine()
    daemon = await serve_engine(engine)
    async with sdk(daemon).responses.connect() as conn:
        await conn.response.create(model="m", input="left", stream_id="a")
        await conn.response.create(model="m", input="right", stream_id="b")
        events: list[Any] = []
        async with asyncio.timeout(5):
            async for event in conn:
                events.append(event)
                if [e.type for e in events].count("response.created") == 2:
                    engine.gate.set()
                if [e.type for e in events].count("response.completed") == 2:
                    break
    created = [e.type for e in events].index("response.created", 1)
    first_end = [e.type for e in events].index("response.completed")
    assert created < first_end  # the second started while the first ran
    by_lane = {lane: [e for e in events if e.stream_id == lane] for lane in ("a", "b")}
    assert len(by_lane["a"]) + len(by_lane["b"]) == len(events)
    assert by_lane["a"][-1].response.output_text == "left"
    assert by_lane["b"][-1].response.output_text == "right"


async def test_an_upstream_error_in_the_stream_fails_the_response(
    proxy: Start, upstream: Upstream
) -> None:
    """The openai engine's in-band error ends the response as response.failed, with the
    upstream's message; the connection goes on."""
    daemon = await proxy(upstream)
    async with sdk(daemon).responses.connect() as conn:
        upstream.mode = "error_in_stream"
        await conn.response.create(model="served", input="hello there")
        events = await until_end(conn)
        assert events[-1].type == "response.failed"
        assert "CUDA out of memory" in events[-1].response.error.message
        upstream.mode = "ok"
        await conn.response.create(model="served", input="hello again")
        assert (await until_end(conn))[-1].type == "response.completed"


async def test_closing_the_connection_closes_the_upstream_request(
    proxy: Start, upstream: Upstream
) -> None:
    """There is no cancel event: a client stops a response by closing; the upstream
    request is closed."""
    daemon = await proxy(upstream)
    upstream.mode = "endless"
    async with sdk(daemon).responses.connect() as conn:
        await conn.response.create(model="served", input="go on")
        async with asyncio.timeout(5):
            await upstream.streaming.wait()
    async with asyncio.timeout(5):
        await upstream.disconnected.wait()


async def test_creates_on_one_lane_run_in_order(client: Daemon) -> None:
    """Three creates sent at once on one lane: each starts after the one before ends, in
    the order sent, none refused."""
    async with sdk(client).responses.connect() as conn:
        for word in ("one", "two", "three"):
            await conn.response.create(model="echo", input=word, stream_id="a")
        events: list[Any] = []
        async with asyncio.timeout(5):
            async for event in conn:
                events.append(event)
                if [e.type for e in events].count("response.completed") == 3:
                    break
    kinds = [e.type for e in events]
    assert "error" not in kinds
    ends = [e for e in events if e.type in ("response.created", "response.completed")]
    assert [e.type for e in ends] == ["response.created", "response.completed"] * 3
    assert [e.response.output_text for e in ends[1::2]] == ["one", "two", "three"]


async def test_format_goes_upstream_and_instructions_do_not_carry_over(
    serve_engine: StartServer,
) -> None:
    """text.format json_schema is the request's response_format; instructions and tools
    lead their own response only, not the ones chained from it."""
    from .engines import RecordingEngine

    engine = RecordingEngine()
    daemon = await serve_engine(engine)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    async with sdk(daemon).responses.connect() as conn:
        await conn.response.create(
            model="m",
            input="one",
            instructions="Be terse.",
            text={"format": {"type": "json_schema", "name": "answer", "schema": schema}},
            max_output_tokens=50,
        )
        first = await until_end(conn)
        await conn.response.create(
            model="m", input="two", previous_response_id=first[-1].response.id
        )
        await until_end(conn)
    one, two = engine.bodies
    assert one["messages"][0] == {"role": "system", "content": "Be terse."}
    assert one["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema},
    }
    assert one["max_tokens"] == 50
    assert first[-1].response.instructions == "Be terse."
    assert [m["role"] for m in two["messages"]] == ["user", "assistant", "user"]
    assert "response_format" not in two


async def test_the_path_shares_auth_and_metrics(serve_engine: StartServer, tmp_path: Any) -> None:
    """--auth-token-file guards /v1/responses too (401 without a token); a response is
    counted with dialect openai-responses."""
    import aiohttp

    from .test_metrics import requests, scrape

    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret\n")
    daemon = await serve_engine(auth_token_file=str(tokens))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await daemon.ws_connect(RESPONSES)
    assert refused.value.status == 401
    headers = {"Authorization": "Bearer s3cret"}
    async with daemon.ws_connect(RESPONSES, headers=headers) as ws:
        await ws.send_json({"type": "response.create", "model": "echo", "input": "hi"})
        async with asyncio.timeout(2):
            while json.loads((await ws.receive()).data)["type"] != "response.completed":
                pass
    samples = await scrape(daemon)
    assert requests(samples, "completed", dialect="openai-responses") == 1
