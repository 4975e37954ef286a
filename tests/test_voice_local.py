"""Voice in with no server of any kind: real speech, pocketsphinx in the daemon.

Speech made by flite in the test, streamed at real-time pace through the
official SDK, detected by server VAD, transcribed by the built-in
``pocketsphinx`` engine and answered by the echo engine; and the same from the
command line, ``realtime-daemon chat --audio FILE``.
"""

from __future__ import annotations

import asyncio
import base64
import time
import wave
from pathlib import Path

import pytest

from .conftest import PATH, StartDaemon, StartServer, serve_json
from .speech import RATE, spoken
from .test_chat import chat
from .test_realtime_sdk import sdk
from .voice import until

pytest.importorskip("pocketsphinx", reason="pocketsphinx (the speech extra) is not installed")

SENTENCE = "what is the weather like today"
WORDS = {"weather", "like", "today"}


async def test_real_speech_at_real_time_pace_is_heard_and_answered(
    serve_engine: StartServer,
) -> None:
    """flite speech in 20 ms appends at the pace of speech, then silence: one turn,
    transcribed with the words said, and the echo engine's answer is that transcript."""
    daemon = await serve_engine(stt="pocketsphinx")
    speech = spoken(SENTENCE, "flite") + bytes(RATE * 2)  # a second of silence after
    step = RATE // 50 * 2  # 20 ms
    async with sdk(daemon).realtime.connect(model="echo") as conn:
        update = {"type": "realtime", "audio": {"input": {"transcription": {"model": None}}}}
        await conn.session.update(session=update)
        await until(conn, "session.updated")
        start = time.monotonic()
        for i, offset in enumerate(range(0, len(speech), step)):
            chunk = base64.b64encode(speech[offset : offset + step]).decode()
            await conn.input_audio_buffer.append(audio=chunk)
            # The pace of speech: each append when its audio would have been spoken.
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
        events = await until(conn, "response.done", seconds=30)
    kinds = [e.type for e in events]
    assert kinds.count("input_audio_buffer.speech_started") == 1
    transcript = next(
        e.transcript
        for e in events
        if e.type == "conversation.item.input_audio_transcription.completed"
    )
    assert set(transcript.split()) >= WORDS, transcript
    answer = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert answer == transcript


async def test_chat_sends_a_wav_file_as_a_spoken_turn(daemon: StartDaemon, tmp_path: Path) -> None:
    """``chat --audio FILE``: the transcript on stderr, the answer to it on stdout, exit 0."""
    path = tmp_path / "question.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(spoken(SENTENCE, "flite"))
    _, port = await serve_json(daemon, "--stt", "pocketsphinx")
    code, out, err = await chat(f"ws://127.0.0.1:{port}{PATH}", "--audio", str(path))
    assert code == 0, err
    said = err.removeprefix("you said: ").strip()
    assert set(said.split()) >= WORDS, err
    assert out == said + "\n"


async def test_chat_refuses_a_file_that_is_not_wav(tmp_path: Path) -> None:
    """``chat --audio`` with a file that is no WAV: one line naming --audio, exit 2."""
    path = tmp_path / "notes.txt"
    path.write_text("not audio")
    code, _, err = await chat("ws://127.0.0.1:9/v1/realtime", "--audio", str(path))
    assert code == 2
    assert "--audio" in err and "not a readable WAV file" in err
