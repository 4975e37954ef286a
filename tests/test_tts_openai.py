"""The openai text-to-speech engine against a fake speech server on a real socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from realtime_daemon.audio.speech import SpeechRequest, SynthesisFailed, Synthesizer
from realtime_daemon.config import Config
from realtime_daemon.engines.speech.load import load_synthesizer

from .conftest import closed_port_url
from .fake_tts import FakeTTS, fake_ttss, pcm_for

TEXT = "Hello there, this is the fake."
REQUEST = SpeechRequest(text=TEXT, voice="alloy")


@pytest.fixture
async def tts() -> AsyncIterator[FakeTTS]:
    async for servers in fake_ttss(1):
        yield servers[0]


@pytest.fixture
async def two() -> AsyncIterator[list[FakeTTS]]:
    async for servers in fake_ttss(2):
        yield servers


def synthesizer(*urls: str, **settings: Any) -> Synthesizer:
    built = load_synthesizer(Config(tts="openai", tts_url=urls, **settings))
    assert built is not None
    return built


async def speak(engine: Synthesizer, request: SpeechRequest = REQUEST) -> list[bytes]:
    pieces: list[bytes] = []
    try:
        async with asyncio.timeout(5):
            await engine.synthesize(request, pieces.append)
    finally:
        await engine.aclose()
    return pieces


async def failure(engine: Synthesizer) -> SynthesisFailed:
    with pytest.raises(SynthesisFailed) as caught:
        await speak(engine)
    return caught.value


def no_url(message: str, server: FakeTTS) -> bool:
    port = server.url.rsplit(":", 1)[1].split("/")[0]
    return "127.0.0.1" not in message and port not in message


async def test_the_audio_is_handed_on_in_even_pieces_as_it_streams(tts: FakeTTS) -> None:
    """The first write's PCM goes on before the answer ends, its odd byte carried over
    to the next read: the pieces, all even, are the audio."""
    tts.mode = "stall"  # the first write, then nothing until released
    engine = synthesizer(tts.url)
    pieces: list[bytes] = []
    first = asyncio.Event()

    def audio(piece: bytes) -> None:
        pieces.append(piece)
        first.set()

    try:
        async with asyncio.timeout(5):
            task = asyncio.create_task(engine.synthesize(REQUEST, audio))
            await first.wait()
            assert pieces == [pcm_for(TEXT)[: tts.chunk - 1]]
            tts.release.set()
            await task
    finally:
        await engine.aclose()
    assert b"".join(pieces) == pcm_for(TEXT)
    assert len(pieces) > 1 and all(p and len(p) % 2 == 0 for p in pieces)
    assert len(pcm_for(TEXT)) / 2 / 24000 == pytest.approx(len(TEXT) * 0.040)


async def test_the_body_asks_for_pcm_with_the_voice_speed_and_model(tts: FakeTTS) -> None:
    """The JSON body: --tts-model, the input, the voice, the speed, response_format pcm."""
    await speak(synthesizer(tts.url), SpeechRequest(text="Hi.", voice="nova", speed=1.25))
    [got] = tts.received
    assert got.body == {
        "model": "tts-1",
        "input": "Hi.",
        "voice": "nova",
        "speed": 1.25,
        "response_format": "pcm",
    }
    assert got.authorization is None


async def test_the_requests_model_wins_over_tts_model(tts: FakeTTS) -> None:
    """A request naming a model sends it; otherwise --tts-model is sent."""
    engine = synthesizer(tts.url, tts_model="kokoro")
    await speak(engine, SpeechRequest(text="Hi.", voice="af_bella", model="tts-1-hd"))
    await speak(engine)
    assert [r.body["model"] for r in tts.received] == ["tts-1-hd", "kokoro"]


async def test_the_api_key_is_sent_and_never_shown(tts: FakeTTS) -> None:
    """--tts-api-key is the Authorization header; reprs of engine and settings leave it out."""
    engine = synthesizer(tts.url, tts_api_key="sk-tts-secret")
    assert "sk-tts-secret" not in repr(engine)
    await speak(engine)
    assert tts.received[0].authorization == "Bearer sk-tts-secret"
    assert "sk-tts-secret" not in repr(Config(tts_api_key="sk-tts-secret"))


async def test_the_voice_is_alloy_unless_tts_voice_says(tts: FakeTTS) -> None:
    """The engine's voice for sessions naming none: --tts-voice, else alloy."""
    assert synthesizer(tts.url).voice == "alloy"
    engine = synthesizer(tts.url, tts_voice="af_sky")
    assert (engine.voice, engine.passthrough) == ("af_sky", True)


async def test_connections_are_kept_for_the_next_synthesis(tts: FakeTTS) -> None:
    """Several syntheses in a row and at once on one engine all answer whole."""
    engine = synthesizer(tts.url)
    texts = ["One.", "Two and two.", "Three, three, three."]
    try:
        for text in texts:
            pieces: list[bytes] = []
            async with asyncio.timeout(5):
                await engine.synthesize(SpeechRequest(text, "alloy"), pieces.append)
            assert b"".join(pieces) == pcm_for(text)
        outputs: list[list[bytes]] = [[], [], []]
        async with asyncio.timeout(5), asyncio.TaskGroup() as group:
            for text, out in zip(texts, outputs, strict=True):
                group.create_task(engine.synthesize(SpeechRequest(text, "alloy"), out.append))
        assert [b"".join(out) for out in outputs] == [pcm_for(t) for t in texts]
    finally:
        await engine.aclose()
    assert all(r.finished for r in tts.received) and len(tts.received) == 6


async def test_a_refused_connection_fails_over_to_the_next_replica(tts: FakeTTS) -> None:
    """The first replica refuses connections: the second speaks."""
    pieces = await speak(synthesizer(closed_port_url(), tts.url))
    assert b"".join(pieces) == pcm_for(TEXT)


async def test_a_500_fails_over_to_the_next_replica(two: list[FakeTTS]) -> None:
    """The first replica answers 500 before any audio: the same body goes to the second."""
    two[0].mode = "500"
    pieces = await speak(synthesizer(two[0].url, two[1].url))
    assert b"".join(pieces) == pcm_for(TEXT)
    assert [len(s.received) for s in two] == [1, 1]
    assert two[0].received[0].body == two[1].received[0].body


async def test_a_400_is_not_retried(two: list[FakeTTS]) -> None:
    """A 4xx is the request's fault: upstream_error, with the upstream's words, no failover."""
    two[0].mode = "400"
    error = await failure(synthesizer(two[0].url, two[1].url))
    assert (error.code, error.message) == (
        "upstream_error",
        "tts replica 0 answered 400: Voice 'nobody' not found.",
    )
    assert [len(s.received) for s in two] == [1, 0]


async def test_an_answer_cut_after_audio_is_not_retried(two: list[FakeTTS]) -> None:
    """Once audio went out, a cut answer fails (upstream_unavailable) without failover."""
    two[0].mode = "cut"
    pieces: list[bytes] = []
    engine = synthesizer(two[0].url, two[1].url)
    with pytest.raises(SynthesisFailed) as caught:
        async with asyncio.timeout(5):
            await engine.synthesize(REQUEST, pieces.append)
    await engine.aclose()
    assert caught.value.code == "upstream_unavailable"
    assert caught.value.message == "tts replica 0 closed the connection mid-answer"
    assert b"".join(pieces) == pcm_for(TEXT)[: two[0].chunk - 1]  # the odd byte never went
    assert [len(s.received) for s in two] == [1, 0]


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("500", "upstream_unavailable", "tts replica 0 answered 500: voice model crashed"),
        ("400", "upstream_error", "tts replica 0 answered 400: Voice 'nobody' not found."),
        ("mp3", "invalid_answer", "tts replica 0 answered audio/mpeg, not PCM"),
        ("cut", "upstream_unavailable", "tts replica 0 closed the connection mid-answer"),
    ],
)
async def test_each_fault_has_its_code_and_no_url(
    tts: FakeTTS, mode: str, code: str, message: str
) -> None:
    """Every way the upstream fails is one SynthesisFailed whose message names no URL."""
    tts.mode = mode
    error = await failure(synthesizer(tts.url))
    assert (error.code, error.message) == (code, message)
    assert no_url(error.message, tts)


async def test_every_replica_down_is_upstream_unavailable_naming_each() -> None:
    """No replica reachable: upstream_unavailable, each replica by index, no URL."""
    error = await failure(synthesizer(closed_port_url(), closed_port_url()))
    assert error.code == "upstream_unavailable"
    assert error.message == (
        "tts replica 0 connection failed: ConnectionRefusedError: Connection refused; "
        "tts replica 1 connection failed: ConnectionRefusedError: Connection refused"
    )


async def test_no_audio_within_the_timeout_fails(tts: FakeTTS) -> None:
    """An upstream that sends its head and no audio for --tts-timeout: timeout."""
    tts.mode = "slow"
    started = time.monotonic()
    error = await failure(synthesizer(tts.url, tts_timeout=0.3))
    assert tts.waiting.is_set()
    assert (error.code, error.message) == ("timeout", "no audio within 0.3 s")
    assert 0.29 <= time.monotonic() - started < 2


async def test_a_silence_after_audio_past_the_timeout_fails(tts: FakeTTS) -> None:
    """Audio, then a silence past --tts-timeout: timeout, the audio before it handed on."""
    tts.mode = "stall"
    engine = synthesizer(tts.url, tts_timeout=0.3)
    pieces: list[bytes] = []
    with pytest.raises(SynthesisFailed) as caught:
        async with asyncio.timeout(5):
            await engine.synthesize(REQUEST, pieces.append)
    await engine.aclose()
    assert (caught.value.code, caught.value.message) == (
        "timeout",
        "tts replica 0 sent no audio for too long",
    )
    assert pieces
    async with asyncio.timeout(2):
        await tts.closed.wait()  # the connection was closed, not left hanging


async def test_a_long_answer_is_not_cut_by_the_timeout(tts: FakeTTS) -> None:
    """An answer streaming longer than --tts-timeout, without a silence as long, is whole."""
    tts.pace, tts.chunk = 0.05, 960 * 2  # 40 ms of audio every 50 ms: 1.5 s for 30 characters
    pieces = await speak(synthesizer(tts.url, tts_timeout=0.5))
    assert b"".join(pieces) == pcm_for(TEXT)


@pytest.mark.parametrize("mode", ["stall", "slow"])
async def test_a_cancelled_synthesis_closes_its_request_at_once(tts: FakeTTS, mode: str) -> None:
    """Cancelled mid-answer (or before its audio), the request's connection is closed at
    once, the fake sees it within 100 ms, and the next synthesis uses a new one."""
    tts.mode = mode
    engine = synthesizer(tts.url)
    pieces: list[bytes] = []
    heard = asyncio.Event()

    def audio(piece: bytes) -> None:
        pieces.append(piece)
        heard.set()

    task = asyncio.create_task(engine.synthesize(REQUEST, audio))
    try:
        async with asyncio.timeout(5):
            await (heard if mode == "stall" else tts.waiting).wait()
            cancelled = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await tts.closed.wait()
        closed_at = tts.received[0].closed_at
        assert closed_at is not None and closed_at - cancelled < 0.1
        assert bool(pieces) == (mode == "stall")
        tts.mode = "stream"
        more: list[bytes] = []
        async with asyncio.timeout(5):
            await engine.synthesize(REQUEST, more.append)
        assert b"".join(more) == pcm_for(TEXT)
    finally:
        await engine.aclose()


async def test_an_audio_callback_that_raises_ends_the_synthesis(tts: FakeTTS) -> None:
    """What the caller's audio() raises comes back from synthesize, and the request is closed."""

    def refuse(piece: bytes) -> None:
        raise RuntimeError("no room")

    tts.mode = "stall"  # the answer is not over when the first piece is refused
    engine = synthesizer(tts.url)
    with pytest.raises(RuntimeError, match="no room"):
        async with asyncio.timeout(5):
            await engine.synthesize(REQUEST, refuse)
    await engine.aclose()
    async with asyncio.timeout(5):
        await tts.closed.wait()
