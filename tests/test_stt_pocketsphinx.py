"""The pocketsphinx engine transcribes real speech, made in the test, off the event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from realtime_daemon.audio.speech import Transcriber, TranscriptionFailed, TranscriptionRequest
from realtime_daemon.config import Config
from realtime_daemon.engines.speech.load import SpeechLoadError, load_transcriber

from .speech import RATE, spoken

WAIT = 30  # seconds: the first turn starts a worker process and loads the model


@pytest.fixture(scope="module")
def sphinx() -> Iterator[Transcriber]:
    """One engine for the module: its workers hold no loop, and start once."""
    engine = load_transcriber(Config(stt="pocketsphinx"))
    assert engine is not None
    yield engine
    asyncio.run(engine.aclose())


async def words(engine: Transcriber, pcm: bytes, rate: int = RATE) -> list[str]:
    pieces: list[str] = []
    async with asyncio.timeout(WAIT):
        transcript = await engine.transcribe(TranscriptionRequest(pcm, rate), pieces.append)
    assert pieces == []  # it does not stream
    assert transcript.seconds == pytest.approx(len(pcm) / 2 / rate)
    return transcript.text.split()


async def test_flite_speech_at_24_khz_is_transcribed(sphinx: Transcriber) -> None:
    """A sentence flite speaks, resampled to the Realtime API's 24 kHz, comes back in words."""
    heard = await words(sphinx, spoken("what is the weather like today", "flite"))
    assert {"what", "weather", "like", "today"} <= set(heard), heard


async def test_espeak_speech_is_transcribed(sphinx: Transcriber) -> None:
    """A sentence espeak-ng speaks comes back in words."""
    heard = await words(sphinx, spoken("open the door", "espeak-ng"))
    assert {"open", "door"} <= set(heard), heard


async def test_telephone_rate_speech_is_transcribed(sphinx: Transcriber) -> None:
    """8 kHz audio (what G.711 decodes to) is resampled up and still heard."""
    heard = await words(sphinx, spoken("please call my mother", "flite", rate=8000), rate=8000)
    assert {"call", "mother"} <= set(heard), heard


async def test_silence_is_an_empty_transcript(sphinx: Transcriber) -> None:
    """Digital silence transcribes to nothing, not to an error."""
    assert await words(sphinx, bytes(RATE * 2)) == []


async def test_two_turns_at_once_are_both_transcribed(sphinx: Transcriber) -> None:
    """Turns of two sessions transcribed at once each get their own words."""
    first = spoken("what is the weather like today", "flite")
    second = spoken("good morning how are you", "flite")
    heard = await asyncio.gather(words(sphinx, first), words(sphinx, second))
    assert "weather" in heard[0] and "morning" in heard[1], heard


async def test_the_event_loop_keeps_running_while_it_decodes(sphinx: Transcriber) -> None:
    """Decoding holds no event-loop time: a ticker keeps ticking while a turn is decoded."""
    speech = spoken("what is the weather like today", "flite") * 3
    await words(sphinx, speech[: RATE * 2])  # a worker is up and its model loaded
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(words(sphinx, speech))
    worst, last = 0.0, loop.time()
    while not task.done():
        await asyncio.sleep(0.01)
        now = loop.time()
        worst, last = max(worst, now - last), now
    assert "weather" in await task
    # In a thread, pocketsphinx holds the GIL for the whole decode (about a second here).
    assert worst < 0.25


async def test_a_turn_past_the_timeout_fails_with_timeout() -> None:
    """--stt-timeout bounds a local transcription too: code timeout, the session goes on."""
    engine = load_transcriber(Config(stt="pocketsphinx", stt_timeout=0.01))
    assert engine is not None
    try:
        with pytest.raises(TranscriptionFailed) as caught:
            await words(engine, spoken("what is the weather like today", "flite"))
    finally:
        await engine.aclose()
    assert (caught.value.code, caught.value.message) == (
        "timeout",
        "pocketsphinx gave no transcript within 0.01 s",
    )


def test_without_the_package_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pocketsphinx missing: one line naming the speech extra."""
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # as if not installed
    with pytest.raises(SpeechLoadError) as caught:
        load_transcriber(Config(stt="pocketsphinx"))
    assert str(caught.value) == (
        "stt 'pocketsphinx': pocketsphinx is not installed: pip install 'realtime-daemon[speech]'"
    )
