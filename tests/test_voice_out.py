"""Voice out: spoken answers through a real speech server, cancel, barge-in, truncation.

Through the official SDK (GA and beta) against a daemon with ``--tts openai``
pointing at the tests' fake speech server, whose audio for a text is 40 ms
of tone per character, so every duration below is known.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from realtime_daemon.engines.api import Envelope, Request, RequestContext
from realtime_daemon.server.app import STATE

from .conftest import PATH, Daemon, Start, StartServer
from .engines import RecordingEngine
from .fake_stt import FakeSTT
from .fake_tts import MS_PER_CHARACTER, FakeTTS, fake_ttss, pcm_for
from .test_realtime_sdk import sdk
from .test_resume import _drop_connections, receive, resume_path, send
from .test_resume import connect as connect_raw
from .upstream import Upstream
from .voice import append_all, bursts, stt, until

__all__ = ["_drop_connections", "stt"]  # fixtures, used by name

SHAPES = [pytest.param(False, id="ga"), pytest.param(True, id="beta")]
TEXT = "Hello there. How are you today?"
PIECES = ["Hello there. ", "How are you today?"]


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def connect(daemon: Daemon, beta: bool, model: str = "echo") -> Any:
    client = sdk(daemon)
    return (client.beta.realtime if beta else client.realtime).connect(model=model)


def names(beta: bool) -> tuple[str, str]:
    """The audio delta's and the transcript delta's event types."""
    if beta:
        return "response.audio.delta", "response.audio_transcript.delta"
    return "response.output_audio.delta", "response.output_audio_transcript.delta"


@pytest.fixture
async def tts() -> AsyncIterator[FakeTTS]:
    async for servers in fake_ttss(1):
        yield servers[0]


@pytest.fixture
async def daemon(serve_engine: StartServer, tts: FakeTTS) -> Daemon:
    return await serve_engine(tts="openai", tts_url=(tts.url,))


async def spoken(conn: Any, text: str = TEXT, **response: Any) -> list[Any]:
    await conn.conversation.item.create(item=user(text))
    await conn.response.create(**({"response": response} if response else {}))
    return await until(conn, "response.done")


@pytest.mark.parametrize("beta", SHAPES)
async def test_an_answer_is_spoken_piece_by_piece_with_its_transcript(
    daemon: Daemon, tts: FakeTTS, beta: bool
) -> None:
    """--tts: audio by default; each sentence synthesized on its own, its transcript delta
    just before its first audio delta, at most 500 ms a delta, then the done events with
    the whole transcript."""
    async with connect(daemon, beta) as conn:
        created = (await until(conn, "session.created"))[-1].session
        modalities = created.modalities if beta else created.output_modalities
        assert "audio" in modalities
        events = await spoken(conn)
    audio_delta, transcript_delta = names(beta)
    kinds = [e.type for e in events]
    transcripts = [e.delta for e in events if e.type == transcript_delta]
    assert transcripts == PIECES
    for i, kind in enumerate(kinds):
        if kind == transcript_delta:
            assert kinds[i + 1] == audio_delta
    audio = [base64.b64decode(e.delta) for e in events if e.type == audio_delta]
    assert max(map(len, audio)) <= 24000 * 2 // 2  # 500 ms of 24 kHz PCM16
    assert b"".join(audio) == b"".join(pcm_for(p) for p in PIECES)
    assert [r.body["input"] for r in tts.received] == PIECES
    assert all(r.body["response_format"] == "pcm" for r in tts.received)
    done = "response.audio_transcript.done" if beta else "response.output_audio_transcript.done"
    assert next(e for e in events if e.type == done).transcript == TEXT
    item = events[-1].response.output[0]
    assert (item.content[0].type, item.content[0].transcript) == (
        "audio" if beta else "output_audio",
        TEXT,
    )
    assert events[-1].response.status == "completed"
    tail = ["response.content_part.done", "response.output_item.done"]
    assert kinds[kinds.index(done) + 1 : kinds.index(done) + 3] == tail


async def test_g711_output_is_encoded_at_8_khz(daemon: Daemon) -> None:
    """beta output_audio_format g711_ulaw: one byte a sample at 8 kHz."""
    async with connect(daemon, True) as conn:
        await conn.session.update(session={"output_audio_format": "g711_ulaw"})
        await until(conn, "session.updated")
        events = await spoken(conn)
    audio = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.audio.delta")
    expected = len(TEXT) * MS_PER_CHARACTER * 8
    assert abs(len(audio) - expected) <= 80  # the resampler's edges


async def test_text_output_stays_text(daemon: Daemon, tts: FakeTTS) -> None:
    """output_modalities ["text"]: today's text answer, nothing synthesized."""
    async with connect(daemon, False) as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await until(conn, "session.updated")
        events = await spoken(conn)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    assert tts.received == []


async def test_cancel_mid_answer_closes_the_synthesis_and_sends_nothing_after(
    daemon: Daemon, tts: FakeTTS
) -> None:
    """response.cancel while a piece is being spoken: response.done cancelled at once, the
    speech request closed, and no event of that response after it."""
    tts.mode = "stall"
    async with connect(daemon, False) as conn:
        await conn.conversation.item.create(item=user(TEXT))
        await conn.response.create()
        await until(conn, "response.output_audio.delta")
        await conn.response.cancel()
        events = await until(conn, "response.done")
        async with asyncio.timeout(2):
            await tts.closed.wait()
        await conn.conversation.item.create(item=user("next"))
        after = await until(conn, "conversation.item.done")
    assert events[-1].response.status == "cancelled"
    assert not any(e.type.startswith("response.") for e in after)


async def test_speech_over_the_answer_cuts_it(
    serve_engine: StartServer, tts: FakeTTS, stt: FakeSTT
) -> None:
    """Barge-in: the user speaking while the answer is spoken ends it at once (turn_detected),
    and the synthesis in flight is closed."""
    tts.mode = "stall"
    daemon = await serve_engine(tts="openai", tts_url=(tts.url,), stt="openai", stt_url=(stt.url,))
    async with connect(daemon, False) as conn:
        await conn.conversation.item.create(item=user(TEXT))
        await conn.response.create()
        await until(conn, "response.output_audio.delta")
        await append_all(conn, bursts(("silence", 100), ("tone", 300)))
        events = await until(conn, "response.done")
        async with asyncio.timeout(2):
            await tts.closed.wait()
    assert "input_audio_buffer.speech_started" in [e.type for e in events]
    done = events[-1].response
    assert (done.status, done.status_details.reason) == ("cancelled", "turn_detected")


async def test_truncate_cuts_the_transcript_to_what_was_heard(
    serve_engine: StartServer, tts: FakeTTS
) -> None:
    """conversation.item.truncate at the middle of the second sentence: truncated, the item's
    transcript is what was spoken by then, and the next response sees that text."""
    engine = RecordingEngine()
    daemon = await serve_engine(engine, tts="openai", tts_url=(tts.url,))
    first_ms = len(PIECES[0]) * MS_PER_CHARACTER
    async with connect(daemon, False) as conn:
        events = await spoken(conn)
        item_id = events[-1].response.output[0].id
        end = first_ms + len("How are") * MS_PER_CHARACTER
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=end)
        truncated = (await until(conn, "conversation.item.truncated"))[-1]
        assert (truncated.item_id, truncated.audio_end_ms) == (item_id, end)
        await conn.conversation.item.retrieve(item_id=item_id)
        item = (await until(conn, "conversation.item.retrieved"))[-1].item
        assert item.content[0].transcript == "Hello there. How are"
        await spoken(conn, "and then?")
    assert engine.bodies[1]["messages"][1] == {
        "role": "assistant",
        "content": "Hello there. How are",
    }


async def test_truncate_refusals_name_their_param(daemon: Daemon) -> None:
    """audio_end_ms past the audio, and an item that is not an assistant audio item: an
    error naming the param."""
    async with connect(daemon, False) as conn:
        events = await spoken(conn)
        item_id = events[-1].response.output[0].id
        total = len(TEXT) * MS_PER_CHARACTER
        await conn.conversation.item.truncate(
            item_id=item_id, content_index=0, audio_end_ms=total + 1000
        )
        past = (await until(conn, "error"))[-1].error
        await conn.conversation.item.create(item={**user("mine"), "id": "mine"})
        await conn.conversation.item.truncate(item_id="mine", content_index=0, audio_end_ms=0)
        wrong = (await until(conn, "error"))[-1].error
    assert (past.code, past.param) == ("invalid_value", "audio_end_ms")
    assert (wrong.code, wrong.param) == ("invalid_value", "item_id")


async def test_a_synthesis_failure_fails_the_response_and_the_session_goes_on(
    daemon: Daemon, tts: FakeTTS
) -> None:
    """The speech server answering 500: response.done failed with a code and no URL; a
    text response after it is answered."""
    tts.mode = "500"
    async with connect(daemon, False) as conn:
        events = await spoken(conn)
        response = events[-1].response
        assert response.status == "failed"
        error = response.status_details.error
        assert error.code == "upstream_unavailable"
        assert tts.url.split("//")[1] not in (error.message or "")
        again = await spoken(conn, "text now", output_modalities=["text"])
    assert again[-1].response.status == "completed"


async def test_the_voice_is_fixed_once_the_session_has_spoken(daemon: Daemon) -> None:
    """As at OpenAI: after the first audio output, a new voice is an error naming it."""
    async with connect(daemon, False) as conn:
        await conn.session.update(
            session={"type": "realtime", "audio": {"output": {"voice": "coral"}}}
        )
        updated = (await until(conn, "session.updated"))[-1].session
        assert updated.audio.output.voice == "coral"
        await spoken(conn)
        await conn.session.update(
            session={"type": "realtime", "audio": {"output": {"voice": "echo"}}}
        )
        error = (await until(conn, "error"))[-1].error
    assert (error.code, error.param) == ("cannot_update_voice", "session.audio.output.voice")


async def test_a_slow_speech_server_delays_the_audio_not_the_session(
    daemon: Daemon, tts: FakeTTS
) -> None:
    """A synthesis that waits: no audio until it answers, and the session still answers
    other events meanwhile."""
    tts.mode = "slow"
    async with connect(daemon, False) as conn:
        await conn.conversation.item.create(item=user(TEXT))
        await conn.response.create()
        async with asyncio.timeout(5):
            await tts.waiting.wait()
        await conn.conversation.item.create(item=user("meanwhile"))
        meanwhile = await until(conn, "conversation.item.done")
        assert "response.output_audio.delta" not in [e.type for e in meanwhile]
        tts.release.set()
        events = await until(conn, "response.done")
    assert events[-1].response.status == "completed"


class HalfwayEngine:
    """Streams the first sentence, then waits for ``gate`` before the rest."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def answer(self, request: Request, context: RequestContext) -> AsyncIterator[Envelope]:
        for char in PIECES[0]:
            yield context.delta(char)
        await self.gate.wait()
        for char in PIECES[1]:
            yield context.delta(char)
        yield context.finish("stop", None)


async def test_the_first_sentence_is_spoken_before_the_answer_ends(
    serve_engine: StartServer, tts: FakeTTS
) -> None:
    """Pipelining: the first sentence's audio goes out while the engine is still answering."""
    engine = HalfwayEngine()
    daemon = await serve_engine(engine, tts="openai", tts_url=(tts.url,))
    async with connect(daemon, False) as conn:
        await conn.conversation.item.create(item=user("go"))
        await conn.response.create()
        first = await until(conn, "response.output_audio.delta")
        assert [e.delta for e in first if e.type.endswith("transcript.delta")] == [PIECES[0]]
        engine.gate.set()
        events = await until(conn, "response.done")
    assert events[-1].response.status == "completed"
    assert [r.body["input"] for r in tts.received] == PIECES


async def test_a_tool_call_in_audio_mode_then_its_spoken_answer(
    proxy: Start, upstream: Upstream, tts: FakeTTS
) -> None:
    """Audio mode: a tool call is a function_call item (nothing spoken); the answer after
    its output is spoken."""
    daemon = await proxy(upstream, tts="openai", tts_url=(tts.url,))
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    async with connect(daemon, False, model="m") as conn:
        await conn.session.update(session={"type": "realtime", "tools": [tool]})
        await until(conn, "session.updated")
        upstream.mode = "tool_call"
        events = await spoken(conn, "weather in Oslo")
        call = events[-1].response.output[0]
        assert (call.type, call.arguments) == ("function_call", '{"city": "Oslo"}')
        assert "response.output_audio.delta" not in [e.type for e in events]
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": "cold"}
        )
        upstream.mode = "ok"
        await conn.response.create()
        answer = await until(conn, "response.done")
    transcript = "".join(
        e.delta for e in answer if e.type == "response.output_audio_transcript.delta"
    )
    assert transcript == "cold"  # the upstream echoes the last message: the tool's output
    assert answer[-1].response.status == "completed"


async def test_barge_in_closes_the_chat_and_the_speech_requests_at_once(
    proxy: Start, upstream: Upstream, tts: FakeTTS, stt: FakeSTT
) -> None:
    """Speech over an answer the openai engine is still streaming: the chat upstream's
    request and the synthesis in flight are both closed within 100 ms of the cut."""
    daemon = await proxy(
        upstream, tts="openai", tts_url=(tts.url,), stt="openai", stt_url=(stt.url,)
    )
    upstream.mode, tts.mode = "endless", "stall"  # a long answer, spoken slowly
    async with connect(daemon, False, model="m") as conn:
        await conn.conversation.item.create(item=user("tell me a long story"))
        await conn.response.create()
        await until(conn, "response.output_audio.delta")
        await append_all(conn, bursts(("silence", 100), ("tone", 300)))
        events = await until(conn, "response.done")
        cut = time.monotonic()
        async with asyncio.timeout(2):
            await upstream.disconnected.wait()
            await tts.closed.wait()
    assert events[-1].response.status_details.reason == "turn_detected"
    assert upstream.disconnected_at is not None and upstream.disconnected_at - cut < 0.1
    closed = [r.closed_at for r in tts.received if r.closed_at is not None]
    assert closed and closed[0] - cut < 0.1


async def test_a_cut_connection_resumed_mid_answer_gets_the_audio_whole(
    daemon: Daemon, tts: FakeTTS
) -> None:
    """A resumable session cut mid-answer: resumed after the last event seen, the rest of
    the audio comes, every event once and in order, the audio whole."""
    tts.pace = 0.01  # the speech server speaks at its own pace
    ws = await connect_raw(daemon, PATH + "?model=echo")
    assert (await receive(ws))["type"] == "session.created"
    send(ws, {"type": "session.update", "session": {"type": "realtime", "resumable": True}})
    token = (await receive(ws))["session"]["resume_token"]
    send(ws, {"type": "conversation.item.create", "item": user(TEXT)})
    send(ws, {"type": "response.create"})
    events = [await receive(ws)]
    while events[-1]["type"] != "response.output_audio.delta":
        events.append(await receive(ws))
    ws.abort()
    again = await connect_raw(daemon, resume_path(token, events[-1]["event_id"]))
    while events[-1]["type"] != "response.done":
        events.append(await receive(again))
    numbers = [int(e["event_id"].removeprefix("event_")) for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert audio == b"".join(pcm_for(p) for p in PIECES)


async def test_a_client_that_stops_reading_holds_the_speech_back_then_is_cut_off(
    serve_engine: StartServer, tts: FakeTTS
) -> None:
    """A client that stops reading a long spoken answer: the speech waits on it (not in an
    unbounded buffer), then --send-timeout cuts it off (1008) and the syntheses in flight
    are closed."""
    daemon = await serve_engine(tts="openai", tts_url=(tts.url,), send_timeout=0.3)
    long = " ".join(["This sentence is spoken at some length."] * 100)  # 10 MB of audio
    raw = await connect_raw(daemon, PATH + "?model=echo")
    send(raw, {"type": "conversation.item.create", "item": user(long)})
    send(raw, {"type": "response.create"})
    with capture_logs() as logs:
        async with asyncio.timeout(10):
            await daemon.app[STATE].connections.wait_closed()
    closed = [e for e in logs if e["event"] == "connection_closed"]
    assert (closed[0]["code"], closed[0]["reason"]) == (1008, "send timeout: client not reading")
    assert len(tts.received) < 100  # the rest of the answer was never synthesized
    assert all(r.finished or r.closed_at is not None for r in tts.received)
