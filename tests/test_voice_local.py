"""Voice in with no server of any kind: real speech, pocketsphinx in the daemon.

Speech made by flite in the test, streamed at real-time pace through the
official SDK, detected by server VAD, transcribed by the built-in
``pocketsphinx`` engine and answered by the echo engine; and the same from the
command line, ``realtime-daemon chat --audio FILE``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import time
import wave
from pathlib import Path

import pytest

from .conftest import PATH, StartDaemon, StartServer, serve_json
from .fake_tts import MS_PER_CHARACTER, fake_ttss
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


async def test_the_pocketsphinx_workers_die_with_a_killed_daemon(
    daemon: StartDaemon, tmp_path: Path
) -> None:
    """A daemon killed outright (SIGKILL) leaves no decoding worker behind: the kernel
    ends them with it (they would hold its pipes open)."""
    path = tmp_path / "turn.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(spoken("open the door", "flite"))
    process, port = await serve_json(daemon, "--stt", "pocketsphinx")
    code, _, err = await chat(f"ws://127.0.0.1:{port}{PATH}", "--audio", str(path))
    assert code == 0, err
    children = [os.pidfd_open(int(pid)) for pid in _children(process.proc.pid)]
    assert children  # the workers (and multiprocessing's resource tracker)
    process.proc.kill()
    await process.proc.wait()
    async with asyncio.timeout(10):
        for pidfd in children:
            await _exited(pidfd)


def _children(pid: int) -> list[str]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return listing.read().split()


async def _exited(pidfd: int) -> None:
    """Wait for a process to end: its pidfd becomes readable then."""
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(pidfd, gone.set_result, None)
    try:
        await gone
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def test_chat_saves_the_spoken_answer(daemon: StartDaemon, tmp_path: Path) -> None:
    """``chat --audio FILE --save-audio ANSWER.wav`` against a daemon that hears with
    pocketsphinx and speaks through a speech server: the answer's transcript on stdout,
    its audio in the WAV file, as long as the speech server made it."""
    question, answer = tmp_path / "question.wav", tmp_path / "answer.wav"
    with wave.open(str(question), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(spoken(SENTENCE, "flite"))
    async for (tts,) in fake_ttss(1):
        _, port = await serve_json(
            daemon, "--stt", "pocketsphinx", "--tts", "openai", "--tts-url", tts.url
        )
        url = f"ws://127.0.0.1:{port}{PATH}"
        code, out, err = await chat(url, "--audio", str(question), "--save-audio", str(answer))
    assert code == 0, err
    said = out.strip()
    assert set(said.split()) >= WORDS, out
    with wave.open(str(answer)) as wav:
        assert wav.getframerate() == RATE
        assert wav.getnframes() == len(said) * MS_PER_CHARACTER * RATE // 1000


async def test_a_full_round_trip_on_one_machine(serve_engine: StartServer) -> None:
    """Speech made by flite, heard by pocketsphinx, echoed, spoken by espeak-ng: the
    spoken answer, decoded by pocketsphinx again, holds the words said."""
    from realtime_daemon.engines.speech.pocketsphinx import decode

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    daemon = await serve_engine(stt="pocketsphinx", tts="espeak")
    async with sdk(daemon).realtime.connect(model="echo") as conn:
        update = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        await conn.session.update(session=update)
        await until(conn, "session.updated")
        speech = spoken("open the door", "flite")
        for offset in range(0, len(speech), 4800):
            chunk = base64.b64encode(speech[offset : offset + 4800]).decode()
            await conn.input_audio_buffer.append(audio=chunk)
        await conn.input_audio_buffer.commit()
        await conn.response.create()
        events = await until(conn, "response.done", seconds=30)
    answer = b"".join(
        base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta"
    )
    assert events[-1].response.status == "completed"
    heard = (await asyncio.to_thread(decode, answer, RATE)).split()
    assert {"open", "door"} <= set(heard), heard
