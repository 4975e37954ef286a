"""Through the official SDK, what voice-agent clients send a text daemon, and what they get:
audio settings partly applied, interruptions' buffer clears, cancelled responses' usage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import Daemon, StartServer
from .engines import EndlessEngine, RecordingEngine
from .test_realtime_sdk import answer, events_until, sdk, user

TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
# livekit-plugins-openai's first session.update with its defaults (audio out, PCM both
# ways, semantic VAD, transcription, noise reduction off), plus the tools it sends.
LIVEKIT_SESSION: dict[str, Any] = {
    "type": "realtime",
    "audio": {
        "input": {
            "format": {"rate": 24000, "type": "audio/pcm"},
            "noise_reduction": None,
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {
                "type": "semantic_vad",
                "create_response": True,
                "eagerness": "medium",
                "interrupt_response": True,
            },
        },
        "output": {"format": {"rate": 24000, "type": "audio/pcm"}, "speed": 1.0, "voice": "marin"},
    },
    "instructions": "Be brief.",
    "max_output_tokens": "inf",
    "model": "echo",
    "output_modalities": ["audio"],
    "tool_choice": "auto",
    "tracing": None,
    "tools": [TOOL],
}
# The beta shape's defaults: text and audio out, a voice, formats, server VAD.
BETA_SESSION: dict[str, Any] = {
    "modalities": ["text", "audio"],
    "instructions": "Be brief.",
    "voice": "alloy",
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "input_audio_transcription": None,
    "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 200},
    "temperature": 0.6,
    "tools": [TOOL],
}
SHAPES = [
    pytest.param(False, "output_modalities", id="ga"),
    pytest.param(True, "modalities", id="beta"),
]


def connect(daemon: Daemon, beta: bool) -> Any:
    client = sdk(daemon)
    return (client.beta.realtime if beta else client.realtime).connect(model="echo")


def deltas(events: list[Any]) -> list[str]:
    kinds = ("response.output_text.delta", "response.text.delta")
    return [e.delta for e in events if e.type in kinds]


@pytest.mark.parametrize(("beta", "session"), [(False, LIVEKIT_SESSION), (True, BETA_SESSION)])
async def test_a_session_asking_for_audio_gets_the_rest_and_one_error(
    serve_engine: StartServer, beta: bool, session: dict[str, Any]
) -> None:
    """Audio defaults: instructions and tools apply, output is text, and one
    unsupported_modality error says what was not applied and why."""
    engine = RecordingEngine()
    daemon = await serve_engine(engine)
    modalities = "modalities" if beta else "output_modalities"
    async with asyncio.timeout(10), connect(daemon, beta) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session=session, event_id="evt_audio")
        updated, error = (await conn.recv()).to_dict(), (await conn.recv()).to_dict()
        await conn.conversation.item.create(item=user("hi"))
        added = await conn.recv()  # no second error in between
        events = await answer(conn)
    assert updated["type"] == "session.updated"
    assert updated["session"][modalities] == ["text"]
    assert updated["session"]["instructions"] == "Be brief."
    assert [tool["name"] for tool in updated["session"]["tools"]] == ["lookup"]
    assert error["type"] == "error"
    detail = error["error"]
    assert (detail["code"], detail["param"], detail["event_id"]) == (
        "unsupported_modality",
        f"session.{modalities}",
        "evt_audio",
    )
    assert "speech engines are not configured on this daemon" in detail["message"]
    assert added.type in ("conversation.item.added", "conversation.item.created")
    assert "".join(deltas(events)) == "hi"
    assert engine.bodies[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [tool["function"]["name"] for tool in engine.bodies[0]["tools"]] == ["lookup"]


async def test_a_malformed_field_beside_audio_still_refuses_the_whole_update(
    client: Daemon,
) -> None:
    """Audio asked for and a bad value: the bad value is refused, nothing applies."""
    async with asyncio.timeout(10), connect(client, beta=False) as conn:
        assert (await conn.recv()).type == "session.created"
        bad = {**LIVEKIT_SESSION, "max_output_tokens": 0}
        await conn.session.update(session=bad)
        error = (await conn.recv()).error
        await conn.session.update(session={"type": "realtime"})
        after = await conn.recv()
    assert (error.code, error.param) == ("invalid_value", "session.max_output_tokens")
    assert after.type == "session.updated"
    assert (after.session.instructions, after.session.tools) == ("", [])


@pytest.mark.parametrize(("beta", "modalities"), SHAPES)
async def test_a_response_asking_for_audio_answers_in_text_after_one_error(
    client: Daemon, beta: bool, modalities: str
) -> None:
    """response.create asking for audio: response.created, one unsupported_modality error
    (after it, so the response is not taken as refused), then the text answer."""
    async with asyncio.timeout(10), connect(client, beta) as conn:
        await conn.conversation.item.create(item=user("hi"))
        await conn.response.create(response={modalities: ["audio"]}, event_id="evt_r")
        events = await events_until(conn, "response.done")
    kinds = [e.type for e in events]
    created = kinds.index("response.created")
    assert kinds.count("error") == 1 and kinds[created + 1] == "error"
    error = events[created + 1].error
    assert (error.code, error.param, error.event_id) == (
        "unsupported_modality",
        f"response.{modalities}",
        "evt_r",
    )
    assert "".join(deltas(events)) == "hi"
    done = events[-1].response
    assert done.status == "completed"
    assert getattr(done, modalities) == ["text"]


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
async def test_input_audio_buffer_clear_is_answered_cleared(client: Daemon, beta: bool) -> None:
    """Pipecat clears the buffer on every interruption: cleared, and no error."""
    async with asyncio.timeout(10), connect(client, beta) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.input_audio_buffer.clear()
        assert (await conn.recv()).type == "input_audio_buffer.cleared"
        await conn.conversation.item.create(item=user("still here"))
        assert "".join(deltas(await answer(conn))) == "still here"


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
async def test_a_cancelled_response_counts_the_output_it_sent(
    serve_engine: StartServer, beta: bool
) -> None:
    """No usage from the engine before the cancel: output_tokens counts the deltas sent,
    input_tokens is 0 (not known)."""
    engine = EndlessEngine()
    daemon = await serve_engine(engine)
    async with asyncio.timeout(10), connect(daemon, beta) as conn:
        await conn.conversation.item.create(item=user("go on"))
        await conn.response.create()
        events = await events_until(
            conn, "response.text.delta" if beta else "response.output_text.delta"
        )
        await conn.response.cancel()
        events += await events_until(conn, "response.done")
    done = events[-1].response
    sent = len(deltas(events))
    assert done.status == "cancelled"
    usage = done.usage
    assert (usage.output_tokens, usage.input_tokens, usage.total_tokens) == (sent, 0, sent)
    assert usage.output_token_details.text_tokens == sent
