"""The openai speech-to-text engine against a fake transcription server on a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from realtime_daemon.audio.speech import Transcriber, TranscriptionFailed, TranscriptionRequest
from realtime_daemon.config import Config
from realtime_daemon.engines.speech.load import load_transcriber

from .conftest import closed_port_url
from .fake_stt import FakeSTT, fake_stts

AUDIO = bytes(range(240)) * 100  # 0.5 s at 24 kHz: any PCM16 will do for a fake server
REQUEST = TranscriptionRequest(audio=AUDIO, rate=24000, model=None, language=None, prompt=None)


@pytest.fixture
async def stt() -> AsyncIterator[FakeSTT]:
    async for servers in fake_stts(1):
        yield servers[0]


@pytest.fixture
async def two() -> AsyncIterator[list[FakeSTT]]:
    async for servers in fake_stts(2):
        yield servers


async def transcriber(*urls: str, **settings: Any) -> Transcriber:
    built = load_transcriber(Config(stt="openai", stt_url=urls, **settings))
    assert built is not None
    return built


async def transcribe(
    engine: Transcriber, request: TranscriptionRequest = REQUEST
) -> tuple[str, float, list[str]]:
    pieces: list[str] = []
    try:
        async with asyncio.timeout(5):
            transcript = await engine.transcribe(request, pieces.append)
    finally:
        await engine.aclose()
    return transcript.text, transcript.seconds, pieces


async def failure(engine: Transcriber) -> TranscriptionFailed:
    with pytest.raises(TranscriptionFailed) as caught:
        await transcribe(engine)
    return caught.value


async def test_a_streamed_answer_gives_its_deltas_and_its_done_text(stt: FakeSTT) -> None:
    """OpenAI's SSE events: each delta is handed on as it comes, the done text is the transcript."""
    text, seconds, pieces = await transcribe(await transcriber(stt.url))
    assert (text, pieces) == (stt.text, ["hello", " from", " the", " fake"])
    assert seconds == pytest.approx(0.5)


async def test_the_upload_is_a_wav_file_with_the_default_fields(stt: FakeSTT) -> None:
    """The file part is audio.wav (audio/wav) of the request's PCM; stream and json are asked."""
    await transcribe(await transcriber(stt.url))
    [got] = stt.received
    assert (got.filename, got.content_type) == ("audio.wav", "audio/wav")
    assert (got.rate, got.frames, got.channels, got.width) == (24000, len(AUDIO) // 2, 1, 2)
    assert got.fields == {"model": "whisper-1", "response_format": "json", "stream": "true"}
    assert got.authorization is None


async def test_a_plain_json_answer_is_the_transcript_without_deltas(stt: FakeSTT) -> None:
    """A server that does not stream answers {"text": ...}: the transcript, no delta."""
    stt.mode = "json"
    text, _, pieces = await transcribe(await transcriber(stt.url))
    assert (text, pieces) == (stt.text, [])


async def test_vllm_chunks_are_read_as_deltas(stt: FakeSTT) -> None:
    """vLLM's transcription chunks (choices[0].delta.content) stream and join into the text."""
    stt.mode = "vllm"
    text, _, pieces = await transcribe(await transcriber(stt.url))
    assert (text, "".join(pieces), len(pieces)) == (stt.text, stt.text, 4)


async def test_the_sessions_model_language_and_prompt_are_sent(stt: FakeSTT) -> None:
    """The request's model, language and prompt are form fields; the rate is the WAV's."""
    request = TranscriptionRequest(
        audio=AUDIO[:16000], rate=8000, model="gpt-4o-transcribe", language="nb", prompt="Oslo"
    )
    _, seconds, _ = await transcribe(await transcriber(stt.url), request)
    [got] = stt.received
    assert got.fields["model"] == "gpt-4o-transcribe"
    assert (got.fields["language"], got.fields["prompt"]) == ("nb", "Oslo")
    assert (got.rate, got.frames, seconds) == (8000, 8000, 1.0)


async def test_stt_model_forces_the_model(stt: FakeSTT) -> None:
    """--stt-model is sent whatever the session asked for."""
    request = TranscriptionRequest(AUDIO, 24000, "gpt-4o-transcribe", None, None)
    await transcribe(await transcriber(stt.url, stt_model="large-v3"), request)
    assert stt.received[0].fields["model"] == "large-v3"


async def test_the_api_key_is_sent_and_never_shown(stt: FakeSTT) -> None:
    """--stt-api-key is the Authorization header, and the engine's repr leaves it out."""
    engine = await transcriber(stt.url, stt_api_key="sk-stt-secret")
    assert "sk-stt-secret" not in repr(engine)
    await transcribe(engine)
    assert stt.received[0].authorization == "Bearer sk-stt-secret"
    assert "sk-stt-secret" not in repr(Config(stt_api_key="sk-stt-secret"))


async def test_connections_are_kept_for_the_next_transcription(stt: FakeSTT) -> None:
    """Several transcriptions in a row on one engine, streamed and plain, all answer."""
    engine = await transcriber(stt.url)
    try:
        for mode in ("stream", "json", "stream", "vllm"):
            stt.mode = mode
            async with asyncio.timeout(5):
                transcript = await engine.transcribe(REQUEST, lambda piece: None)
            assert transcript.text == stt.text
    finally:
        await engine.aclose()
    assert len(stt.received) == 4


async def test_a_refused_connection_fails_over_to_the_next_replica(stt: FakeSTT) -> None:
    """The first replica refuses connections: the second answers."""
    text, _, _ = await transcribe(await transcriber(closed_port_url(), stt.url))
    assert text == stt.text


async def test_a_500_fails_over_to_the_next_replica(two: list[FakeSTT]) -> None:
    """The first replica answers 500: the same upload goes to the second, which answers."""
    two[0].mode = "500"
    text, _, _ = await transcribe(await transcriber(two[0].url, two[1].url))
    assert text == two[1].text
    assert [len(s.received) for s in two] == [1, 1]
    assert two[0].received[0].frames == two[1].received[0].frames


async def test_a_400_is_not_retried(two: list[FakeSTT]) -> None:
    """A 4xx is the request's fault: upstream_error, with the upstream's words, no failover."""
    two[0].mode = "400"
    error = await failure(await transcriber(two[0].url, two[1].url))
    assert error.code == "upstream_error"
    assert error.message == "stt replica 0 answered 400: Invalid file format."
    assert [len(s.received) for s in two] == [1, 0]


async def test_an_answer_cut_after_a_delta_is_not_retried(two: list[FakeSTT]) -> None:
    """Once a piece was streamed, a cut answer fails (upstream_unavailable) without failover."""
    two[0].mode = "cut"
    pieces: list[str] = []
    engine = await transcriber(two[0].url, two[1].url)
    with pytest.raises(TranscriptionFailed) as caught:
        async with asyncio.timeout(5):
            await engine.transcribe(REQUEST, pieces.append)
    await engine.aclose()
    assert (caught.value.code, pieces) == ("upstream_unavailable", ["hello"])
    assert caught.value.message == "stt replica 0 closed the connection mid-answer"
    assert [len(s.received) for s in two] == [1, 0]


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("500", "upstream_unavailable", "stt replica 0 answered 500: model worker crashed"),
        ("400", "upstream_error", "stt replica 0 answered 400: Invalid file format."),
        ("bad_json", "invalid_answer", "stt replica 0 sent a malformed answer: "),
        ("cut", "upstream_unavailable", "stt replica 0 closed the connection mid-answer"),
        ("stream_error", "upstream_error", "stt replica 0 reported an error: CUDA out of memory"),
    ],
)
async def test_each_fault_has_its_code_and_no_url(
    stt: FakeSTT, mode: str, code: str, message: str
) -> None:
    """Every way the upstream fails is one TranscriptionFailed whose message names no URL."""
    stt.mode = mode
    error = await failure(await transcriber(stt.url))
    assert error.code == code
    assert error.message.startswith(message)
    port = stt.url.rsplit(":", 1)[1].split("/")[0]
    assert "127.0.0.1" not in error.message and port not in error.message


async def test_every_replica_down_is_upstream_unavailable_naming_each() -> None:
    """No replica reachable: upstream_unavailable, each replica by index, no URL."""
    urls = (closed_port_url(), closed_port_url())
    error = await failure(await transcriber(*urls))
    assert error.code == "upstream_unavailable"
    assert error.message == (
        "stt replica 0 connection failed: ConnectionRefusedError: Connection refused; "
        "stt replica 1 connection failed: ConnectionRefusedError: Connection refused"
    )
    assert "127.0.0.1" not in error.message


async def test_a_slow_answer_times_out(stt: FakeSTT) -> None:
    """An upstream slower than --stt-timeout fails the transcription with code timeout."""
    stt.mode = "slow"
    engine = await transcriber(stt.url, stt_timeout=0.3)
    started = asyncio.get_running_loop().time()
    error = await failure(engine)
    assert stt.waiting.is_set()
    assert (error.code, error.message) == ("timeout", "no transcript within 0.3 s")
    assert 0.29 <= asyncio.get_running_loop().time() - started < 2  # uvloop counts in ms
