"""The local text-to-speech engines speak real 24 kHz PCM, stop when cancelled, and are heard."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtime_daemon.audio.speech import (
    PCM_RATE,
    SpeechRequest,
    SynthesisFailed,
    Synthesizer,
    Transcriber,
    TranscriptionRequest,
)
from realtime_daemon.audio.wav import WavReader, wav_bytes
from realtime_daemon.config import Config
from realtime_daemon.engines.speech.load import load_synthesizer, load_transcriber

from .speech import spoken

SENTENCE = "open the door and turn on the light"


@pytest.fixture(params=["espeak", "flite"])
def local(request: pytest.FixtureRequest) -> Synthesizer:
    program = "espeak-ng" if request.param == "espeak" else "flite"
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (apt-get install {program})")
    engine = load_synthesizer(Config(tts=request.param))
    assert engine is not None
    return engine


@pytest.fixture
def espeak() -> Synthesizer:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    engine = load_synthesizer(Config(tts="espeak"))
    assert engine is not None
    return engine


async def speak(engine: Synthesizer, request: SpeechRequest) -> list[bytes]:
    pieces: list[bytes] = []
    async with asyncio.timeout(10):
        await engine.synthesize(request, pieces.append)
    return pieces


def children(name: str) -> list[int]:
    """This process's children running ``name`` (Linux: /proc's children lists)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        pids += [int(pid) for pid in (task / "children").read_text().split()]
    return [p for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == name]


async def test_espeak_speaks_24_khz_pcm_as_long_as_espeak_ng_itself(espeak: Synthesizer) -> None:
    """The engine's audio is espeak-ng's own, resampled to 24 kHz: as long, to a few samples,
    and streamed in several even pieces."""
    pieces = await speak(espeak, SpeechRequest(SENTENCE, espeak.voice))
    audio = b"".join(pieces)
    reference = spoken(SENTENCE, "espeak-ng", rate=PCM_RATE)
    assert abs(len(audio) - len(reference)) <= 2 * 10
    assert 1.5 < len(audio) / 2 / PCM_RATE < 4.5  # 8 words at 175 a minute, and pauses
    assert len(pieces) > 1 and all(p and len(p) % 2 == 0 for p in pieces)


async def test_the_local_engines_speak_faster_at_a_higher_speed(local: Synthesizer) -> None:
    """Speed 2.0 makes the same sentence markedly shorter than 1.0."""
    normal = b"".join(await speak(local, SpeechRequest(SENTENCE, local.voice)))
    fast = b"".join(await speak(local, SpeechRequest(SENTENCE, local.voice, speed=2.0)))
    assert len(normal) > 0 and len(fast) < 0.7 * len(normal)


@pytest.fixture(scope="module")
def sphinx() -> Iterator[Transcriber]:
    """One pocketsphinx engine for the module: its workers start once."""
    engine = load_transcriber(Config(stt="pocketsphinx"))
    assert engine is not None
    yield engine
    asyncio.run(engine.aclose())


async def test_what_a_local_engine_says_pocketsphinx_hears(
    local: Synthesizer, sphinx: Transcriber
) -> None:
    """A round trip: the engine's speech, transcribed by pocketsphinx, has the words said."""
    said = "what is the weather like today"
    audio = b"".join(await speak(local, SpeechRequest(said, local.voice)))
    async with asyncio.timeout(30):  # the first turn starts a worker and loads the model
        transcript = await sphinx.transcribe(TranscriptionRequest(audio, PCM_RATE), print)
    assert {"what", "weather", "like"} <= set(transcript.text.split()), transcript.text


async def test_a_cancelled_espeak_is_killed_at_once(espeak: Synthesizer) -> None:
    """Cancelled after its first audio (a long text still being spoken), the espeak-ng
    process is gone when the cancelled call returns."""
    heard = asyncio.Event()

    def audio(piece: bytes) -> None:
        heard.set()

    long = " ".join([SENTENCE] * 100)  # minutes of speech
    task = asyncio.create_task(espeak.synthesize(SpeechRequest(long, espeak.voice), audio))
    async with asyncio.timeout(10):
        await heard.wait()
        assert children("espeak-ng")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert children("espeak-ng") == []


async def test_an_unknown_espeak_voice_is_an_engine_error(espeak: Synthesizer) -> None:
    """espeak-ng refusing the voice fails the synthesis, engine_error, with its own words."""
    with pytest.raises(SynthesisFailed) as caught:
        await speak(espeak, SpeechRequest("hello", "nosuchvoice"))
    assert caught.value.code == "engine_error"
    assert caught.value.message == (
        "espeak failed (exit 1): Error: The specified espeak-ng voice does not exist."
    )


async def test_a_silent_program_times_out(tmp_path: Path) -> None:
    """A program that writes nothing for --tts-timeout fails the synthesis (timeout) and is
    killed."""
    script = tmp_path / "espeak-ng"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{tmp_path}:{path}"
    try:
        engine = load_synthesizer(Config(tts="espeak", tts_timeout=0.2))
    finally:
        os.environ["PATH"] = path
    assert engine is not None
    with pytest.raises(SynthesisFailed) as caught:
        await speak(engine, SpeechRequest("hello", "en-us"))
    assert (caught.value.code, caught.value.message) == (
        "timeout",
        "espeak gave no audio for 0.2 s",
    )
    assert children("sleep") == []


@pytest.mark.parametrize("cut", [1, 7, 44, 45, 1000])
def test_a_wav_stream_is_read_whatever_its_cuts(cut: int) -> None:
    """WavReader gives the samples after the header, however the stream is cut."""
    pcm = bytes(range(256)) * 8
    stream = wav_bytes(pcm, 22050)
    reader = WavReader()
    out = b"".join(reader.feed(stream[i : i + cut]) for i in range(0, len(stream), cut))
    assert (out, reader.rate) == (pcm, 22050)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"ID3\x04" + bytes(40), "not a WAV stream"),
        (wav_bytes(b"", 8000)[:22] + b"\x02\x00" + wav_bytes(b"", 8000)[24:], "not PCM16 mono"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk\xff\xff\x00\x00" + bytes(5000), "header over 4096"),
    ],
)
def test_a_stream_that_is_no_pcm16_wav_is_refused(stream: bytes, message: str) -> None:
    """Not a WAV, not PCM16 mono, or a header that never ends: ValueError saying so."""
    with pytest.raises(ValueError, match=message):
        WavReader().feed(stream)
