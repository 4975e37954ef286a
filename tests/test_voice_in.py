"""Voice in: audio appended, turns detected, transcribed by a real STT server, answered.

Through the official SDK (GA and beta) against a daemon whose ``--stt openai``
points at the tests' fake transcription server; the echo engine answers, so
a response's text is the transcript it was given.
"""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from typing import Any

import pytest

from realtime_daemon.config import ModelConfig

from .conftest import PATH, Daemon, StartServer
from .engines import GatedEngine, RecordingEngine
from .fake_stt import FakeSTT
from .test_metrics import scrape
from .test_realtime_sdk import sdk
from .test_resume import _drop_connections, receive, resume_path, send
from .test_resume import connect as connect_raw
from .voice import append_all, bursts, chunks, in_format, stt, until

__all__ = ["_drop_connections", "stt"]  # fixtures, used by name

SHAPES = [pytest.param(False, id="ga"), pytest.param(True, id="beta")]
TURN = bursts(("silence", 500), ("tone", 800), ("silence", 1500))
"""A turn: speech from 500 to 1300 ms, then silence past the 500 ms window."""


def connect(daemon: Daemon, beta: bool, **kwargs: Any) -> Any:
    client = sdk(daemon)
    return (client.beta.realtime if beta else client.realtime).connect(model="echo", **kwargs)


def listening(beta: bool, **turn: Any) -> dict[str, Any]:
    """A session update turning transcription on (and turn detection as given)."""
    transcription = {"model": "whisper-1", "language": "en"}
    if beta:
        session: dict[str, Any] = {"input_audio_transcription": transcription}
        if turn:
            session["turn_detection"] = turn.get("turn_detection")
        return session
    audio_input: dict[str, Any] = {"transcription": transcription}
    if turn:
        audio_input["turn_detection"] = turn.get("turn_detection")
    return {"type": "realtime", "audio": {"input": audio_input}}


@pytest.fixture
async def daemon(serve_engine: StartServer, stt: FakeSTT) -> Daemon:
    stt.text = "turn on the lights"
    return await serve_engine(stt="openai", stt_url=(stt.url,))


@pytest.mark.parametrize("beta", SHAPES)
async def test_a_spoken_turn_is_detected_transcribed_and_answered(
    daemon: Daemon, stt: FakeSTT, beta: bool
) -> None:
    """Server VAD (the default): speech_started and speech_stopped on the audio clock,
    the turn committed as a user item, its transcript, then a response to it."""
    async with connect(daemon, beta) as conn:
        await conn.session.update(session=listening(beta))
        await until(conn, "session.updated")
        await append_all(conn, TURN)
        events = await until(conn, "response.done")
    kinds = [e.type for e in events]
    started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
    assert abs(started.audio_start_ms - (500 - 300)) <= 30
    assert abs(stopped.audio_end_ms - (1300 + 500)) <= 30
    committed = next(e for e in events if e.type == "input_audio_buffer.committed")
    assert started.item_id == stopped.item_id == committed.item_id
    assert committed.previous_item_id is None
    item_event = "conversation.item.created" if beta else "conversation.item.added"
    item = next(e for e in events if e.type == item_event).item
    assert (item.id, item.role, item.content[0].type) == (committed.item_id, "user", "input_audio")
    completed = next(
        e for e in events if e.type == "conversation.item.input_audio_transcription.completed"
    )
    assert completed.transcript == "turn on the lights"
    assert completed.usage.type == "duration"
    pieces = [e.delta for e in events if e.type.endswith("input_audio_transcription.delta")]
    assert "".join(pieces) == completed.transcript  # streamed by the STT server, word by word
    assert kinds.index("conversation.item.input_audio_transcription.completed") < kinds.index(
        "response.created"
    )
    delta = "response.text.delta" if beta else "response.output_text.delta"
    assert "".join(e.delta for e in events if e.type == delta) == "turn on the lights"
    assert events[-1].response.status == "completed"
    (upload,) = stt.received
    assert (upload.rate, upload.fields["model"], upload.fields["language"]) == (
        24000,
        "whisper-1",
        "en",
    )
    # The item holds the turn from its padded start to its end: 1600 ms.
    assert abs(upload.frames - 24 * 1600) <= 24 * 30


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
async def test_g711_audio_is_heard_at_8_khz(daemon: Daemon, stt: FakeSTT, fmt: str) -> None:
    """beta's G.711 formats: the same turn, detected and sent on at 8 kHz."""
    async with connect(daemon, True) as conn:
        await conn.session.update(session={**listening(True), "input_audio_format": fmt})
        updated = await until(conn, "session.updated")
        assert updated[-1].session.input_audio_format == fmt
        for chunk in chunks(in_format(TURN, fmt), 20, fmt):
            await conn.input_audio_buffer.append(audio=chunk)
        events = await until(conn, "response.done")
    stopped = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
    assert abs(stopped.audio_end_ms - 1800) <= 30
    assert stt.received[0].rate == 8000


@pytest.mark.parametrize("beta", SHAPES)
async def test_manual_commit_makes_an_item_and_no_response(
    daemon: Daemon, stt: FakeSTT, beta: bool
) -> None:
    """turn_detection null: no VAD events; commit makes the item, response.create answers it."""
    async with connect(daemon, beta) as conn:
        await conn.session.update(session=listening(beta, turn_detection=None))
        updated = (await until(conn, "session.updated"))[-1].session
        turn = updated.turn_detection if beta else updated.audio.input.turn_detection
        assert turn is None
        await append_all(conn, TURN)
        await conn.input_audio_buffer.commit()
        events = await until(conn, "conversation.item.input_audio_transcription.completed")
        assert "input_audio_buffer.speech_started" not in [e.type for e in events]
        assert events[0].type == "input_audio_buffer.committed"
        await conn.response.create()
        answer = await until(conn, "response.done")
    delta = "response.text.delta" if beta else "response.output_text.delta"
    assert "".join(e.delta for e in answer if e.type == delta) == "turn on the lights"
    assert abs(stt.received[0].frames - 24 * 2800) <= 1


async def test_a_response_asked_before_the_transcript_waits_for_it(
    daemon: Daemon, stt: FakeSTT
) -> None:
    """response.create right after a commit: the response starts once the transcript is in,
    and answers it."""
    stt.mode = "slow"
    async with connect(daemon, False) as conn:
        await conn.session.update(session=listening(False, turn_detection=None))
        await until(conn, "session.updated")
        await append_all(conn, TURN)
        await conn.input_audio_buffer.commit()
        await conn.response.create()
        async with asyncio.timeout(5):
            await stt.waiting.wait()
        stt.release.set()
        events = await until(conn, "response.done")
    kinds = [e.type for e in events]
    assert kinds.index("conversation.item.input_audio_transcription.completed") < kinds.index(
        "response.created"
    )
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        "turn on the lights"
    )


async def test_commit_under_100_ms_and_clear(daemon: Daemon) -> None:
    """Under 100 ms of audio: input_audio_buffer_commit_empty; clear drops what was
    appended, so a commit after it is refused the same way; the session goes on."""
    async with connect(daemon, False) as conn:
        await conn.session.update(session=listening(False, turn_detection=None))
        await until(conn, "session.updated")
        await append_all(conn, bursts(("tone", 60)))
        await conn.input_audio_buffer.commit()
        error = (await until(conn, "error"))[-1].error
        assert error.code == "input_audio_buffer_commit_empty"
        await append_all(conn, bursts(("tone", 400)))
        await conn.input_audio_buffer.clear()
        assert (await until(conn, "input_audio_buffer.cleared"))[-1].type
        await conn.input_audio_buffer.commit()
        error = (await until(conn, "error"))[-1].error
        assert error.code == "input_audio_buffer_commit_empty"


async def test_bad_audio_is_refused_naming_audio(daemon: Daemon) -> None:
    """Invalid base64 and an odd number of PCM16 bytes: invalid_value, param audio."""
    async with connect(daemon, False) as conn:
        await conn.input_audio_buffer.append(audio="not base64!")
        first = (await until(conn, "error"))[-1].error
        await conn.input_audio_buffer.append(audio=base64.b64encode(b"\x00\x01\x02").decode())
        second = (await until(conn, "error"))[-1].error
    assert (first.code, first.param) == ("invalid_value", "audio")
    assert (second.code, second.param) == ("invalid_value", "audio")


async def test_audio_past_the_buffer_bound_is_refused_whole(
    serve_engine: StartServer, stt: FakeSTT
) -> None:
    """--max-input-audio-seconds: the append past it is refused with a code; what came
    before it is still there to commit."""
    daemon = await serve_engine(stt="openai", stt_url=(stt.url,), max_input_audio_seconds=1)
    async with connect(daemon, False) as conn:
        await conn.session.update(session=listening(False, turn_detection=None))
        await until(conn, "session.updated")
        first = base64.b64encode(bursts(("tone", 600))).decode()
        await conn.input_audio_buffer.append(audio=first)
        await conn.input_audio_buffer.append(audio=first)
        error = (await until(conn, "error"))[-1].error
        assert error.code == "input_audio_buffer_full"
        await conn.input_audio_buffer.commit()
        await until(conn, "conversation.item.input_audio_transcription.completed")
    assert stt.received[0].frames == 24 * 600


async def test_a_failed_transcription_fails_its_response_and_the_session_goes_on(
    daemon: Daemon, stt: FakeSTT
) -> None:
    """The STT server failing: transcription.failed with a code (no URL), the turn's
    response failed with status_details.error, and the next text turn is answered
    without the untranscribed item."""
    stt.mode = "500"
    async with connect(daemon, False) as conn:
        await conn.session.update(session=listening(False))
        await until(conn, "session.updated")
        await append_all(conn, TURN)
        events = await until(conn, "response.done")
        failed = next(
            e for e in events if e.type == "conversation.item.input_audio_transcription.failed"
        )
        assert failed.error.code == "upstream_unavailable"
        assert stt.url.split("//")[1] not in (failed.error.message or "")
        response = events[-1].response
        assert response.status == "failed"
        assert response.status_details.error.code == "transcription_failed"
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        }
        await conn.conversation.item.create(item=item)
        await conn.response.create()
        answer = await until(conn, "response.done")
    assert answer[-1].response.status == "completed"
    assert "".join(e.delta for e in answer if e.type == "response.output_text.delta") == "hi"


async def test_speech_interrupts_the_running_response(
    serve_engine: StartServer, stt: FakeSTT
) -> None:
    """interrupt_response (default on): speech starting while a response runs cancels it,
    reason turn_detected."""
    gated = GatedEngine()
    daemon = await serve_engine(gated, stt="openai", stt_url=(stt.url,))
    async with connect(daemon, False) as conn:
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        }
        await conn.conversation.item.create(item=item)
        await conn.response.create()
        await until(conn, "response.created")
        await append_all(conn, bursts(("silence", 100), ("tone", 300)))
        events = await until(conn, "response.done")
    kinds = [e.type for e in events]
    assert "input_audio_buffer.speech_started" in kinds
    done = events[-1].response
    assert (done.status, done.status_details.reason) == ("cancelled", "turn_detected")


async def test_without_stt_audio_is_refused_saying_which_option_turns_it_on(
    client: Daemon,
) -> None:
    """No --stt: an append gets unsupported_modality, and the message names --stt."""
    async with connect(client, False) as conn:
        await conn.input_audio_buffer.append(audio="AAAA")
        error = (await until(conn, "error"))[-1].error
    assert (error.code, error.param) == ("unsupported_modality", "type")
    assert "--stt" in error.message


@pytest.mark.parametrize(
    ("session", "param"),
    [
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
            "session.audio.input.turn_detection.threshold",
        ),
        ({"audio": {"input": {"format": {"type": "audio/mp3"}}}}, "session.audio.input.format"),
        (
            {"audio": {"input": {"turn_detection": {"type": "loud"}}}},
            "session.audio.input.turn_detection",
        ),
        (
            {"audio": {"input": {"transcription": {"model": 5}}}},
            "session.audio.input.transcription.model",
        ),
    ],
)
async def test_a_bad_audio_setting_is_an_error_naming_it_and_nothing_changes(
    daemon: Daemon, session: dict[str, Any], param: str
) -> None:
    """Each bad input audio setting: an error naming its param; the session unchanged."""
    async with connect(daemon, False) as conn:
        created = (await until(conn, "session.created"))[-1].session
        await conn.session.update(session={"type": "realtime", "instructions": "x", **session})
        error = (await until(conn, "error"))[-1].error
        assert error.param == param
        await conn.session.update(session={"type": "realtime"})
        after = (await until(conn, "session.updated"))[-1].session
    assert after.instructions == created.instructions
    assert after.audio.input.turn_detection.threshold == 0.5


async def test_a_transcription_session_transcribes_and_never_responds(
    daemon: Daemon, stt: FakeSTT
) -> None:
    """?intent=transcription: a transcription session; a turn is transcribed, no response
    follows, and response.create is refused."""
    client = sdk(daemon)
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        created = (await until(conn, "session.created"))[-1]
        assert created.session.type == "transcription"
        await conn.session.update(
            session={
                "type": "transcription",
                "audio": {"input": {"transcription": {"model": "whisper-1"}}},
            }
        )
        await until(conn, "session.updated")
        await append_all(conn, TURN)
        events = await until(conn, "conversation.item.input_audio_transcription.completed")
        assert events[-1].transcript == "turn on the lights"
        await conn.response.create()
        error = (await until(conn, "error"))[-1].error
    assert "response.created" not in [e.type for e in events]
    assert error.code == "invalid_request"


async def test_beta_transcription_session_update(daemon: Daemon) -> None:
    """beta transcription_session.update is answered transcription_session.updated."""
    async with connect(daemon, True) as conn:
        await conn.transcription_session.update(
            session={"input_audio_transcription": {"model": "whisper-1"}}
        )
        updated = (await until(conn, "transcription_session.updated"))[-1]
    assert updated.session.input_audio_transcription.model == "whisper-1"


async def test_two_sessions_talk_at_once(daemon: Daemon, stt: FakeSTT) -> None:
    """Two sessions streaming turns together: each gets its own transcript and answer."""

    async def talk() -> str:
        async with connect(daemon, False) as conn:
            await conn.session.update(session=listening(False))
            await until(conn, "session.updated")
            await append_all(conn, TURN)
            events = await until(conn, "response.done")
        return "".join(e.delta for e in events if e.type == "response.output_text.delta")

    assert await asyncio.gather(talk(), talk()) == ["turn on the lights"] * 2
    assert len(stt.received) == 2


async def test_the_idle_timeout_commits_the_silence_and_asks_for_a_response(
    daemon: Daemon,
) -> None:
    """GA idle_timeout_ms: no speech after a turn's response for that long gives
    timeout_triggered (its span the timeout, on the audio clock), the silence as an
    item, and a response."""
    turn = {"type": "server_vad", "idle_timeout_ms": 200}
    async with connect(daemon, False) as conn:
        await conn.session.update(session=listening(False, turn_detection=turn))
        await until(conn, "session.updated")
        await append_all(conn, TURN)
        await until(conn, "response.done")
        await append_all(conn, bursts(("silence", 400)))
        events = await until(conn, "response.done")
    triggered = next(e for e in events if e.type == "input_audio_buffer.timeout_triggered")
    assert triggered.audio_end_ms - triggered.audio_start_ms == 200
    committed = next(e for e in events if e.type == "input_audio_buffer.committed")
    assert committed.item_id == triggered.item_id
    assert events[-1].response.status == "completed"


async def test_an_audio_model_gets_the_audio_itself_without_waiting_for_its_transcript(
    serve_engine: StartServer, stt: FakeSTT
) -> None:
    """[[models]] audio_input = "passthrough": the user's turn reaches the chat engine as an
    input_audio part (WAV, base64) holding the committed audio, and the response does not
    wait for the transcript; a transcribing model gets the transcript."""
    engine = RecordingEngine()
    models = (
        ModelConfig(name="omni", engine="echo", audio_input="passthrough"),
        ModelConfig(name="text", engine="echo"),
    )
    daemon = await serve_engine(engine, stt="openai", stt_url=(stt.url,), models=models)
    stt.mode = "slow"
    async with sdk(daemon).realtime.connect(model="omni") as conn:
        await conn.session.update(session=listening(False, turn_detection=None))
        await until(conn, "session.updated")
        await append_all(conn, TURN)
        await conn.input_audio_buffer.commit()
        await conn.response.create()
        await until(conn, "response.done")
        stt.release.set()
        await until(conn, "conversation.item.input_audio_transcription.completed")
        await conn.session.update(session={"type": "realtime", "model": "text"})
        await until(conn, "session.updated")
        await conn.response.create()
        await until(conn, "response.done")
    (part,) = engine.bodies[0]["messages"][0]["content"]
    assert (part["type"], part["input_audio"]["format"]) == ("input_audio", "wav")
    with wave.open(io.BytesIO(base64.b64decode(part["input_audio"]["data"]))) as wav:
        assert (wav.getframerate(), wav.getnframes()) == (24000, 24 * 2800)
    assert engine.bodies[1]["messages"][0] == {"role": "user", "content": stt.text}


async def test_a_turn_cut_by_a_lost_connection_goes_on_when_the_session_resumes(
    daemon: Daemon,
) -> None:
    """A resumable voice session whose connection is cut mid-turn: resumed after the last
    event seen, the rest of the turn's audio ends the same turn, transcribed and answered,
    every event once and in order."""
    ws = await connect_raw(daemon, PATH + "?model=echo")
    assert (await receive(ws))["type"] == "session.created"
    update = listening(False)
    send(ws, {"type": "session.update", "session": {**update, "resumable": True}})
    token = (await receive(ws))["session"]["resume_token"]
    half = len(bursts(("silence", 500), ("tone", 400)))
    for chunk in chunks(TURN[:half]):
        send(ws, {"type": "input_audio_buffer.append", "audio": chunk})
    events = [await receive(ws)]
    assert events[0]["type"] == "input_audio_buffer.speech_started"
    ws.abort()
    again = await connect_raw(daemon, resume_path(token, events[-1]["event_id"]))
    for chunk in chunks(TURN[half:]):
        send(again, {"type": "input_audio_buffer.append", "audio": chunk})
    while events[-1]["type"] != "response.done":
        events.append(await receive(again))
    numbers = [int(e["event_id"].removeprefix("event_")) for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    assert stopped["item_id"] == events[0]["item_id"]
    assert abs(stopped["audio_end_ms"] - 1800) <= 30
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "turn on the lights"


async def test_voice_metrics_count_audio_turns_and_failed_transcriptions(
    daemon: Daemon, stt: FakeSTT
) -> None:
    """/metrics: seconds of audio heard, turns detected, transcriptions timed, failures
    by code, all labelled with the speech-to-text engine."""
    async with connect(daemon, False) as conn:
        await conn.session.update(session=listening(False))
        await until(conn, "session.updated")
        await append_all(conn, TURN)
        await until(conn, "response.done")
        stt.mode = "400"
        await append_all(conn, TURN)
        await until(conn, "response.done")
    samples = await scrape(daemon)
    engine = (("engine", "openai"),)
    assert samples[("realtime_daemon_audio_input_seconds_total", engine)] == pytest.approx(5.6)
    assert samples[("realtime_daemon_turns_detected_total", engine)] == 2
    assert samples[("realtime_daemon_transcription_seconds_count", engine)] == 2
    failed = (("code", "upstream_error"), ("engine", "openai"))
    assert samples[("realtime_daemon_transcription_failures_total", failed)] == 1
