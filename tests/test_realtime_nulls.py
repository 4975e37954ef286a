"""An explicit null in a Realtime client event is "not given", field by field, as OpenAI says."""

from __future__ import annotations

import copy
import re
from typing import Any

import aiohttp
import pytest

from realtime_daemon.dialects.realtime import BETA, GA, Names
from realtime_daemon.dialects.realtime.fields import Null

from .conftest import StartServer, receive_envelope
from .engines import RecordingEngine
from .test_realtime import REALTIME, until, user

SHAPES = [
    pytest.param(GA, {}, id="ga"),
    pytest.param(BETA, {"OpenAI-Beta": "realtime=v1"}, id="beta"),
]
TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


def session_of(names: Names) -> dict[str, Any]:
    """Settings unlike the defaults, so that a null read as "clear it" shows."""
    shaped = {"temperature": 0.3} if names.beta else {"type": "realtime"}
    return {
        "instructions": "Keep it short.",
        "tools": [TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        names.max_tokens: 77,
        **shaped,
    }


def frame_of(kind: str, names: Names) -> dict[str, Any]:
    """A valid frame of each client event (a new event in the table needs one here)."""
    frames: dict[str, dict[str, Any]] = {
        "session.update": {"session": {} if names.beta else {"type": "realtime"}},
        "conversation.item.create": {"item": user("walk")},
        "conversation.item.delete": {"item_id": "doomed"},
        "conversation.item.retrieve": {"item_id": "kept"},
        "response.create": {"response": {}},
        "response.cancel": {},
        "input_audio_buffer.clear": {},
    }
    return {"type": kind, **copy.deepcopy(frames[kind])}


def answer_of(kind: str, names: Names) -> str:
    """The last event of the answer to a frame of ``kind`` that is not refused."""
    return {
        "session.update": "session.updated",
        "conversation.item.create": names.item_done or names.item_added,
        "conversation.item.delete": "conversation.item.deleted",
        "conversation.item.retrieve": "conversation.item.retrieved",
        "response.create": "response.done",
        "response.cancel": "response.done",
        "input_audio_buffer.clear": "input_audio_buffer.cleared",
    }[kind]


_SERVER_ID = re.compile(r"^(item|resp)_\d+$")


def normalised(value: Any) -> Any:
    """An answer without what differs from one event to the next (event and server ids)."""
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items() if k != "event_id"}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if isinstance(value, str) and _SERVER_ID.match(value):
        return "<id>"
    return value


class Walker:
    """Sends one frame with what it needs before and after, so that every frame finds
    the session as the last one left it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, names: Names, engine: Any) -> None:
        self.ws, self.names, self.engine = ws, names, engine

    async def send(self, frame: dict[str, Any], last: str) -> list[dict[str, Any]]:
        await self.ws.send_json(frame)
        events = [await receive_envelope(self.ws)]
        while events[-1]["type"] not in (last, "error"):
            events.append(await receive_envelope(self.ws))
        return events

    async def delete(self, item_id: str) -> None:
        frame = {"type": "conversation.item.delete", "item_id": item_id}
        assert (await self.send(frame, "conversation.item.deleted"))[-1]["item_id"] == item_id

    async def exchange(self, frame: dict[str, Any]) -> list[Any]:
        """The frame's answer (normalised) and, for a response, the engine's request."""
        kind, item_done = frame["type"], self.names.item_done or self.names.item_added
        if kind == "conversation.item.delete":
            doomed = {**user("bye"), "id": "doomed"}
            await self.send({"type": "conversation.item.create", "item": doomed}, item_done)
        if kind == "response.cancel":
            hold = {**user("hold"), "id": "hold"}
            await self.send({"type": "conversation.item.create", "item": hold}, item_done)
            await self.send({"type": "response.create"}, "response.created")
        bodies = len(self.engine.bodies)
        events = await self.send(frame, answer_of(kind, self.names))
        last = events[-1]
        if last["type"] == item_done and kind == "conversation.item.create":
            await self.delete(last["item"]["id"])
        if last["type"] == "response.done":
            for item in last["response"]["output"]:
                await self.delete(item["id"])
        if kind == "response.cancel":
            await self.delete("hold")
        return [normalised(events), self.engine.bodies[bodies:]]


@pytest.mark.parametrize(("names", "headers"), SHAPES)
async def test_a_null_optional_field_is_an_absent_one_in_every_client_event(
    serve_engine: StartServer, names: Names, headers: dict[str, str]
) -> None:
    """Each field of the dialect's table: a null answers as the field absent (session and
    request unchanged), a null required field is refused naming it."""
    engine = RecordingEngine()
    daemon = await serve_engine(engine)
    async with daemon.ws_connect(REALTIME, headers=headers) as ws:
        await until(ws, "session.created")
        walker = Walker(ws, names, engine)
        await walker.send(
            {"type": "session.update", "session": session_of(names)}, "session.updated"
        )
        item_done = names.item_done or names.item_added
        kept = {"type": "conversation.item.create", "item": {**user("first"), "id": "kept"}}
        await walker.send(kept, item_done)
        for (kind, place), fields in names.fields.items():
            for name, null in fields.items():
                frame = frame_of(kind, names)
                target = frame if not place else frame[place]
                target.pop(name, None)
                with_null = copy.deepcopy(frame)
                (with_null if not place else with_null[place])[name] = None
                param = f"{place}.{name}" if place else name
                if null is Null.REFUSED:
                    refused = (await walker.exchange(with_null))[0][-1]
                    assert (refused["type"], refused["error"]["param"]) == ("error", param)
                else:
                    absent = await walker.exchange(frame)
                    assert absent[0][-1]["type"] == answer_of(kind, names), (param, absent)
                    assert await walker.exchange(with_null) == absent, (kind, param)


# livekit-plugins-openai's generate_reply(), byte for byte: RealtimeResponseCreateParams(
# instructions=None, metadata=...) dumped with exclude_unset, so the null is sent.
LIVEKIT_REPLY = (
    '{"type": "response.create", "event_id": "response_create_1a2b3c4d5e6f", "response":'
    ' {"instructions": null, "metadata": {"client_event_id": "response_create_1a2b3c4d5e6f"}}}'
)


async def test_livekit_generate_reply_keeps_the_session_instructions(
    serve_engine: StartServer,
) -> None:
    """LiveKit's response.create with "instructions": null is answered with the session's."""
    engine = RecordingEngine()
    daemon = await serve_engine(engine)
    async with daemon.ws_connect(REALTIME) as ws:
        await ws.send_json(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}}
        )
        await ws.send_json({"type": "conversation.item.create", "item": user("hello")})
        await ws.send_str(LIVEKIT_REPLY)
        events = await until(ws, "response.done")
    assert [e for e in events if e["type"] == "error"] == []
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["metadata"] == {"client_event_id": "response_create_1a2b3c4d5e6f"}
    assert engine.bodies[0]["messages"][0] == {"role": "system", "content": "Be brief."}
