"""Speech-to-text engines: pocketsphinx's real-time factor, the openai engine's own cost.

Run by hand from the checkout's root: ``.venv/bin/python benchmarks/stt.py``.

- pocketsphinx: flite and espeak-ng speak sentences (24 kHz PCM16, as the
  Realtime API sends); each is transcribed ``--repeats`` times by a warm
  worker, one at a time; reported: decode seconds per second of audio (the
  real-time factor), median and worst, and the words heard.
- openai: ``--requests`` transcriptions of 2 s of audio, one at a time,
  against an instant local server (aiohttp, multipart parsed, a JSON
  answer); reported: the round trip p50/p99, and the daemon side's CPU per
  transcription (the process's CPU less the server's handler time is not
  separable here, so both are in one process: read it as an upper bound).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import statistics
import subprocess
import time
import wave

import numpy as np
import soxr
from aiohttp import web

from realtime_daemon.audio.speech import TranscriptionRequest
from realtime_daemon.config import Config
from realtime_daemon.engines.speech.load import load_transcriber

SENTENCES = [
    ("flite", "what is the weather like today"),
    ("flite", "good morning how are you"),
    ("espeak-ng", "open the door"),
    ("flite", "please call my mother and tell her i will be late for dinner tonight"),
]
COMMANDS = {
    "espeak-ng": lambda text: ["espeak-ng", "-v", "en-us", "--stdout", text],
    "flite": lambda text: ["flite", "-o", "/dev/stdout", "-t", text],
}


def spoken(voice: str, text: str) -> bytes:
    wav = subprocess.run(COMMANDS[voice](text), capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as audio:
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
        rate = audio.getframerate()
    return bytes(soxr.resample(samples, rate, 24000).astype("<i2").tobytes())


async def pocketsphinx(repeats: int) -> None:
    engine = load_transcriber(Config(stt="pocketsphinx"))
    assert engine is not None
    try:
        await engine.transcribe(TranscriptionRequest(bytes(48000), 24000), lambda _: None)
        for voice, text in SENTENCES:
            if shutil.which(voice) is None:
                print(f"{voice}: not installed, skipped")
                continue
            request = TranscriptionRequest(spoken(voice, text), 24000)
            factors = []
            for _ in range(repeats):
                started = time.perf_counter()
                transcript = await engine.transcribe(request, lambda _: None)
                factors.append((time.perf_counter() - started) / request.seconds)
            print(
                f"pocketsphinx {voice:9} {request.seconds:4.1f} s  RTF median "
                f"{statistics.median(factors):.3f} worst {max(factors):.3f}  "
                f"{text!r} -> {transcript.text!r}"
            )
    finally:
        await engine.aclose()


async def _instant(request: web.Request) -> web.Response:
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        await part.read()  # type: ignore[union-attr]
    return web.json_response({"text": "hello world"})


async def openai(requests: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", _instant)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    engine = load_transcriber(Config(stt="openai", stt_url=(url,)))
    assert engine is not None
    request = TranscriptionRequest(bytes(96000), 24000)  # 2 s
    times = []
    cpu = time.process_time()
    try:
        for _ in range(requests):
            started = time.perf_counter()
            await engine.transcribe(request, lambda _: None)
            times.append(time.perf_counter() - started)
    finally:
        cpu = time.process_time() - cpu
        await engine.aclose()
        await runner.cleanup()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(
        f"openai {requests} x 2 s audio: round trip p50 {statistics.median(times) * 1000:.2f} ms"
        f" p99 {p99 * 1000:.2f} ms; CPU (engine and server) {cpu / requests * 1000:.2f} ms each"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(pocketsphinx(args.repeats))
    asyncio.run(openai(args.requests))


if __name__ == "__main__":
    main()
