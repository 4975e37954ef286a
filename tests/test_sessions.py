"""Sessions: request ids, control messages, cancel, concurrent answers, readable errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_daemon.config import ModelConfig
from realtime_daemon.dialects.chat import ChatDialect
from realtime_daemon.wire.chat import FrameError
from realtime_daemon.wire.events import Cancel, Refuse, Reply, Submit

from .conftest import (
    PATH,
    Client,
    StartServer,
    content,
    receive_answer,
    receive_envelope,
    receive_until,
    request,
)
from .engines import EndlessEngine, PromptGatedEngine
from .frames import Frames

Envelope = dict[str, Any]


def is_terminal(envelope: Envelope) -> bool:
    """Whether ``envelope`` ends an answer: a finish chunk, an error, or ``cancelled``."""
    if envelope.get("event") in ("error", "cancelled"):
        return True
    data = envelope.get("data")
    return bool(data) and any(c["finish_reason"] for c in data.get("choices", []))


async def answers_by_id(ws: aiohttp.ClientWebSocketResponse, ids: set[str]) -> dict[str, list]:
    """Envelopes by request id until each of ``ids`` has its terminal envelope."""
    got: dict[str, list[Envelope]] = {i: [] for i in ids}
    pending = set(ids)
    while pending:
        envelope = await receive_envelope(ws)
        got[envelope["request_id"]].append(envelope)
        if is_terminal(envelope):
            pending.discard(envelope["request_id"])
    return got


async def update(ws: aiohttp.ClientWebSocketResponse, **session: Any) -> Envelope:
    await ws.send_json({"type": "session.update", "session": session})
    return await receive_envelope(ws)


# -- request ids --------------------------------------------------------------------


async def test_request_id_is_on_every_envelope_of_its_answer(client: Client) -> None:
    """Each envelope of an answer carries the request's request_id at the top level."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("abc", request_id="r-1"))
        answer = await receive_answer(ws)
    assert content(answer) == "abc"
    assert [e["request_id"] for e in answer] == ["r-1"] * 4
    assert [e["id"] for e in answer] == ["1", "2", "3", "4"]


async def test_request_id_never_reaches_the_engine_or_the_chunk(client: Client) -> None:
    """The answer to a request with an id is the answer to the same request without it."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("x", request_id="r"))
        with_id = await receive_answer(ws)
        await ws.send_json(request("x"))
        without = await receive_answer(ws)
    assert [set(e["data"]) for e in with_id] == [set(e["data"]) for e in without]
    assert "request_id" not in without[0]


@pytest.mark.parametrize("bad", [7, "", "x" * 65, "tab\there", "é", None, ["r"]])
async def test_invalid_request_id_is_refused_and_the_session_goes_on(
    client: Client, bad: Any
) -> None:
    """A request_id that is not 1-64 printable ASCII characters: invalid_request_id, dropped."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("dropped", request_id=bad))
        await ws.send_json(request("kept", request_id="ok"))
        refusal = await receive_envelope(ws)
        answer = await receive_answer(ws)
    assert refusal["event"] == "error"
    assert refusal["error"]["code"] == "invalid_request_id"
    assert refusal["comment"] == [refusal["error"]["message"]]
    assert content(answer) == "kept"


async def test_duplicate_request_id_is_refused_while_the_first_is_running(
    serve_engine: StartServer,
) -> None:
    """An id equal to one still running: duplicate_request_id, the new request dropped."""
    engine = PromptGatedEngine()
    client = await serve_engine(engine)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("slow", request_id="same"))
        async with asyncio.timeout(2):
            await engine.slow_started.wait()
        await ws.send_json(request("second", request_id="same"))
        await ws.send_json(request("third", request_id="other"))
        # A control message is answered at once: once its answer is back, the
        # daemon has read the requests sent before it.
        await ws.send_json({"type": "request.cancel", "request_id": "probe"})
        assert (await receive_envelope(ws))["error"]["code"] == "unknown_request_id"
        engine.gate.set()
        first = await receive_answer(ws)
        refusal = await receive_envelope(ws)
        third = await receive_answer(ws)
        await ws.send_json(request("again", request_id="same"))  # free once answered
        again = await receive_answer(ws)
    assert content(first) == "slow"
    assert (refusal["error"]["code"], refusal["request_id"]) == ("duplicate_request_id", "same")
    assert content(third) == "third"
    assert content(again) == "again"


# -- control messages ---------------------------------------------------------------


async def test_cancel_removes_a_queued_request(serve_engine: StartServer) -> None:
    """request.cancel of a queued request ends it with "cancelled"; it is never answered."""
    engine = PromptGatedEngine()
    client = await serve_engine(engine)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("slow", request_id="a"))
        await ws.send_json(request("queued", request_id="b"))
        await ws.send_json(request("after", request_id="c"))
        async with asyncio.timeout(2):
            await engine.slow_started.wait()
        await ws.send_json({"type": "request.cancel", "request_id": "b"})
        cancelled = await receive_envelope(ws)  # ahead of the queue
        engine.gate.set()
        rest = await answers_by_id(ws, {"a", "c"})
    assert cancelled == {"id": "1", "event": "cancelled", "request_id": "b"}
    assert content(rest["a"]) == "slow"
    assert content(rest["c"]) == "after"
    assert rest["c"][0]["data"]["id"].endswith("-2")


async def test_cancel_stops_a_running_answer_and_the_session_goes_on(
    serve_engine: StartServer,
) -> None:
    """request.cancel of a running answer stops its engine work; the next request is answered."""
    engine = EndlessEngine()
    client = await serve_engine(engine)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("long", request_id="r1"))
        async with asyncio.timeout(2):
            await engine.streaming.wait()
        await ws.send_json({"type": "request.cancel", "request_id": "r1"})
        envelopes = await receive_until(ws, "cancelled")
        async with asyncio.timeout(2):
            await engine.ended.wait()
        assert engine.stopped_when_ended is True
        await ws.send_json({"type": "request.cancel", "request_id": "r1"})
        unknown = await receive_envelope(ws)
    assert envelopes[-1] == {
        "id": str(len(envelopes)),
        "event": "cancelled",
        "request_id": "r1",
    }
    assert all(e["request_id"] == "r1" for e in envelopes)
    assert (unknown["error"]["code"], unknown["request_id"]) == ("unknown_request_id", "r1")


async def test_cancel_racing_the_answers_end_gives_one_terminal(client: Client) -> None:
    """A cancel sent as the answer ends: exactly one terminal envelope, either way."""
    async with client.ws_connect(PATH) as ws:
        for n in range(30):
            rid = f"race-{n}"
            await ws.send_json(request("ab" * (n % 4), request_id=rid))
            await ws.send_json({"type": "request.cancel", "request_id": rid})
            ours: list[Envelope] = []
            unknown: list[Envelope] = []
            while len([e for e in ours if is_terminal(e)]) + len(unknown) < 2:
                envelope = await receive_envelope(ws)
                if envelope.get("error", {}).get("code") == "unknown_request_id":
                    unknown.append(envelope)
                else:
                    ours.append(envelope)
                if ours and ours[-1].get("event") == "cancelled":
                    break
            terminals = [e for e in ours if is_terminal(e)]
            assert len(terminals) == 1, ours
            assert ours[-1] is terminals[0]
            # A cancel that lost the race is told so; one that won is the terminal.
            assert (terminals[0].get("event") == "cancelled") == (not unknown)


async def test_session_update_is_confirmed_with_the_effective_session(client: Client) -> None:
    """session.update answers session.updated with the whole effective session."""
    async with client.ws_connect(PATH) as ws:
        updated = await update(ws, max_concurrent_requests=2)
        again = await update(ws, request_defaults={"temperature": 0.5})
    assert updated["event"] == "session.updated"
    assert updated["id"] == "1"
    session = updated["data"]
    assert session["max_concurrent_requests"] == 2
    assert session["model"] is None and session["request_defaults"] == {}
    assert again["data"]["max_concurrent_requests"] == 2
    assert again["data"]["request_defaults"] == {"temperature": 0.5}
    assert again["data"]["session_id"] == session["session_id"]


@pytest.mark.parametrize(
    ("session", "named"),
    [
        ({"max_concurrent_requests": 0}, "max_concurrent_requests"),
        ({"max_concurrent_requests": 5}, "max_concurrent_requests"),
        ({"max_concurrent_requests": "2"}, "max_concurrent_requests"),
        ({"colour": "red"}, "colour"),
        ({"request_defaults": {"temperature": "hot"}}, "request_defaults.temperature"),
        ({"request_defaults": {"messages": []}}, "request_defaults"),
        ({"request_defaults": 3}, "request_defaults"),
    ],
)
async def test_bad_session_update_names_the_field_and_changes_nothing(
    client: Client, session: dict[str, Any], named: str
) -> None:
    """A bad field: invalid_session_update naming it; the session stays as it was."""
    async with client.ws_connect(PATH) as ws:
        refusal = await update(ws, **session)
        await ws.send_json(request("still sequential"))
        answer = await receive_answer(ws)
    assert refusal["event"] == "error"
    assert refusal["error"]["code"] == "invalid_session_update"
    assert named in refusal["error"]["message"]
    assert content(answer) == "still sequential"


async def test_unknown_message_type_is_refused_and_the_session_goes_on(client: Client) -> None:
    """A control message of an unknown type: unknown_message_type; the session goes on."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json({"type": "response.create"})
        refusal = await receive_envelope(ws)
        await ws.send_json(request("fine"))
        answer = await receive_answer(ws)
    assert refusal["error"]["code"] == "unknown_message_type"
    assert "response.create" in refusal["comment"][0]
    assert content(answer) == "fine"


async def test_cancel_without_an_id_is_refused(client: Client) -> None:
    """request.cancel without a string request_id: invalid_request_id."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_json({"type": "request.cancel"})
        refusal = await receive_envelope(ws)
    assert refusal["error"]["code"] == "invalid_request_id"


# -- concurrent answers -------------------------------------------------------------


async def test_concurrent_answers_interleave_each_whole_and_in_order(
    serve_engine: StartServer,
) -> None:
    """With max_concurrent_requests 4, four answers interleave, each complete and in order."""
    client = await serve_engine(echo_delay_ms=2)
    prompts = {f"r{n}": f"answer number {n}" for n in range(4)}
    async with client.ws_connect(PATH) as ws:
        await update(ws, max_concurrent_requests=4)
        for rid, text in prompts.items():
            await ws.send_json(request(text, request_id=rid))
        order: list[str] = []
        got: dict[str, list[Envelope]] = {rid: [] for rid in prompts}
        while any(not a or not is_terminal(a[-1]) for a in got.values()):
            envelope = await receive_envelope(ws)
            order.append(envelope["request_id"])
            got[envelope["request_id"]].append(envelope)
    for rid, text in prompts.items():
        assert content(got[rid]) == text
    first_ends = min(order.index(rid) + len(got[rid]) for rid in prompts)
    assert len(set(order[:first_ends])) == 4  # all four were streaming before any ended


async def test_slow_answer_does_not_hold_up_a_fast_one(serve_engine: StartServer) -> None:
    """In concurrent mode a fast request is answered in full while a slow one waits."""
    engine = PromptGatedEngine()
    client = await serve_engine(engine)
    async with client.ws_connect(PATH) as ws:
        await update(ws, max_concurrent_requests=2)
        await ws.send_json(request("slow", request_id="slow"))
        await ws.send_json(request("fast", request_id="fast"))
        fast = await receive_answer(ws)
        engine.gate.set()
        slow = await receive_answer(ws)
    assert {e["request_id"] for e in fast} == {"fast"}
    assert content(fast) == "fast"
    assert content(slow) == "slow"


async def test_concurrent_mode_requires_request_ids(client: Client) -> None:
    """With max_concurrent_requests > 1, a request without request_id: request_id_required."""
    async with client.ws_connect(PATH) as ws:
        await update(ws, max_concurrent_requests=2)
        await ws.send_json(request("no id"))
        refusal = await receive_envelope(ws)
    assert refusal["error"]["code"] == "request_id_required"
    assert "request_id" not in refusal


# -- session defaults and routing ---------------------------------------------------


async def test_session_model_routes_requests_without_one(serve_engine: StartServer) -> None:
    """session.update's model picks the engine of requests that name none."""
    models = (
        ModelConfig(name="slow-echo", engine="echo", echo_delay_ms=1),
        ModelConfig(name="shout", engine="tests.engines:ShoutingEcho"),
    )
    client = await serve_engine(models=models)
    async with client.ws_connect(PATH) as ws:
        updated = await update(ws, model="shout")
        await ws.send_json({"messages": [{"role": "user", "content": "quiet"}]})
        routed = await receive_answer(ws)
        await ws.send_json(request("quiet", model="slow-echo"))
        own = await receive_answer(ws)
        refusal = await update(ws, model="gpt-17")
    assert updated["data"]["model"] == "shout"
    assert content(routed) == "QUIET"
    assert routed[0]["data"]["model"] == "shout"
    assert content(own) == "quiet"
    assert refusal["error"]["code"] == "model_not_found"
    assert "shout, slow-echo" in refusal["comment"][0]


async def test_unknown_model_of_a_request_is_model_not_found(serve_engine: StartServer) -> None:
    """With [[models]], a request for another model: model_not_found with its request_id."""
    client = await serve_engine(models=(ModelConfig(name="a", engine="echo"),))
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("?", model="b", request_id="q"))
        refusal = await receive_envelope(ws)
    assert refusal["error"]["code"] == "model_not_found"
    assert refusal["request_id"] == "q"


async def test_request_without_a_model_and_no_session_model_closes_1007(client: Client) -> None:
    """Without a session model, a request with no model is malformed, as before."""
    async with client.ws_connect(PATH) as ws:
        await ws.send_str(json.dumps({"messages": [{"role": "user", "content": "x"}]}))
        msg = await ws.receive()
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1007


# -- any control-shaped input -------------------------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_frames = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["request.cancel", "session.update", "x"]) | _values,
        "request_id": _values,
        "session": st.fixed_dictionaries(
            {},
            optional={
                "model": _values,
                "max_concurrent_requests": _values,
                "request_defaults": _values,
            },
        )
        | _values,
        "model": st.just("m") | _values,
        "messages": st.just([{"role": "user", "content": "x"}]) | _values,
    },
)


@settings(max_examples=300)
@given(st.lists(_frames, max_size=6))
def test_any_control_shaped_frames_decode_or_are_refused(frames: list[dict[str, Any]]) -> None:
    """Frames with every session field of any type become events or FrameError, nothing else."""
    dialect = ChatDialect(Frames(), "s", ["m"], concurrency_limit=4)
    for frame in frames:
        try:
            event = dialect.receive(json.dumps(frame).encode())
        except FrameError as exc:
            assert str(exc)
        else:
            assert isinstance(event, Submit | Cancel | Reply | Refuse)
