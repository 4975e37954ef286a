"""The OpenAI Agents SDK's ``responses_websocket_session()`` against the daemon: an agent
with a real function tool calls it, gets its result, and answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from realtime_daemon.engines.base import RequestContext
from realtime_daemon.wire.chat import Envelope, Request

from .conftest import StartServer

agents = pytest.importorskip("agents")


def _chunk(delta: dict[str, Any], finish: str | None = None) -> Envelope:
    chunk = {
        "id": "chatcmpl-tool",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return Envelope(data=msgspec.Raw(json.dumps(chunk).encode()))


class WeatherModel:
    """A model that calls the request's tool for the user's city, then answers with what
    the tool said; it keeps every request's messages."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        body = json.loads(request.raw)
        messages = body["messages"]
        self.requests.append(messages)
        last = messages[-1]
        if last["role"] == "tool":
            yield _chunk({"role": "assistant", "content": "It is "})
            yield _chunk({"content": last["content"]})
            yield _chunk({}, "stop")
            return
        name = body["tools"][0]["function"]["name"]
        call = {"index": 0, "id": "call_w1", "type": "function"}
        yield _chunk({"tool_calls": [{**call, "function": {"name": name, "arguments": ""}}]})
        for piece in ('{"city": ', '"Oslo"}'):
            yield _chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield _chunk({}, "tool_calls")


@pytest.mark.parametrize("chained", [False, True], ids=["resent", "chained"])
async def test_an_agent_calls_its_function_tool_and_answers(
    serve_engine: StartServer, chained: bool
) -> None:
    """Runner through responses_websocket_session: the tool runs with the model's arguments,
    its result goes back over the socket, and the agent's final output is the answer;
    with auto_previous_response_id the SDK sends the tool's result alone, and the model
    still gets the whole conversation from the daemon's chain."""
    agents.set_tracing_disabled(True)
    model = WeatherModel()
    daemon = await serve_engine(model)
    called: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        called.append(city)
        return f"sunny in {city}"

    agent = agents.Agent(
        name="weather", instructions="Answer briefly.", tools=[get_weather], model="m"
    )
    base = f"{daemon.host}:{daemon.port}/v1"
    async with agents.responses_websocket_session(
        api_key="unused", base_url=f"http://{base}", websocket_base_url=f"ws://{base}"
    ) as session:
        result = await session.run(
            agent, "What is the weather in Oslo?", auto_previous_response_id=chained
        )
    assert called == ["Oslo"]
    assert result.final_output == "It is sunny in Oslo"
    second = model.requests[1]
    assert second[0] == {"role": "system", "content": "Answer briefly."}
    assert second[1] == {"role": "user", "content": "What is the weather in Oslo?"}
    assert second[2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}'
    assert second[-1] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny in Oslo"}
