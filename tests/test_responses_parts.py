"""The Responses dialect's parts without a socket: its bounds, its store, its frames."""

from __future__ import annotations

import json

import pytest

from realtime_daemon.dialects.responses import MemoryStore, ResponsesDialect
from realtime_daemon.dialects.responses.store import Chain, Chains
from realtime_daemon.wire.chunks import ToolCallDelta
from realtime_daemon.wire.events import Submit

from .frames import Frames


def test_chains_forget_the_oldest_past_their_bounds() -> None:
    """Past max_items of what the responses added, the oldest chains go, the newest stay."""
    chains = Chains(max_items=4, max_bytes=1000)
    for n in range(3):
        chains.add(f"r{n}", Chain(({"n": n},) * 2, 10), (2, 10))
    assert chains.get("r0") is None
    assert chains.get("r1") is not None and chains.get("r2") is not None


async def test_the_memory_store_is_bounded_in_bytes_and_expires() -> None:
    """The oldest responses go past max_bytes; one past its TTL is unknown."""
    store = MemoryStore(max_bytes=100)
    store.put("a", [{"text": "x" * 60}])
    store.put("b", [{"text": "y" * 60}])
    assert await store.get("a") is None
    assert await store.get("b") == [{"text": "y" * 60}]
    expired = MemoryStore(ttl=-1)
    expired.put("a", [])
    assert await expired.get("a") is None


def dialect(frames: Frames) -> ResponsesDialect:
    return ResponsesDialect(
        frames,
        "s1",
        models=None,
        concurrency_limit=4,
        max_items=100,
        max_bytes=1 << 20,
        store=None,
    )


def test_a_tool_call_streams_as_a_function_call_item() -> None:
    """Driven without a loop: the tool call's deltas, then its done events with the
    arguments joined, in order, numbered; the frames are the SDK's JSON."""
    frames = Frames()
    responses = dialect(frames)
    create = {"type": "response.create", "model": "m", "input": "go", "stream_id": "x"}
    submit = responses.receive(json.dumps(create).encode())
    assert isinstance(submit, Submit) and submit.request_id is not None
    output = responses.started(submit.request_id)
    output.tool_call(ToolCallDelta(0, "call_1", "f", '{"a"'))
    output.tool_call(ToolCallDelta(0, None, None, ": 1}"))
    output.finish("tool_calls")
    responses.release(submit.request_id)
    events = frames.events
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(1, 9))
    assert {e["stream_id"] for e in events} == {"x"}
    item = events[-1]["response"]["output"][0]
    assert (item["call_id"], item["name"], item["arguments"]) == ("call_1", "f", '{"a": 1}')


@pytest.mark.parametrize("finish", ["length", "content_filter"])
def test_a_cut_answer_is_incomplete_with_its_reason(finish: str) -> None:
    """finish_reason length or content_filter: response.incomplete with the reason."""
    frames = Frames()
    responses = dialect(frames)
    submit = responses.receive(b'{"type": "response.create", "model": "m", "input": "go"}')
    assert isinstance(submit, Submit) and submit.request_id is not None
    output = responses.started(submit.request_id)
    output.text("par")
    output.finish(finish)
    responses.release(submit.request_id)
    last = frames.events[-1]
    assert last["type"] == "response.incomplete"
    reason = {"length": "max_output_tokens", "content_filter": "content_filter"}[finish]
    assert last["response"]["incomplete_details"] == {"reason": reason}
    assert last["response"]["output"][0]["content"][0]["text"] == "par"
