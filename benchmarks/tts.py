"""Text-to-speech engines: the local engines' real-time factor, the openai engine's own cost.

Run by hand from the checkout's root: ``.venv/bin/python benchmarks/tts.py``.

- espeak, flite: each sentence spoken ``--repeats`` times, one at a time;
  reported: the time to the first audio piece, the real-time factor (wall
  seconds per second of audio, the program's process start included), and
  the daemon's own CPU per second of audio (reading, WAV, resampling to
  24 kHz; the program's CPU is its child's, reported apart).
- openai: ``--requests`` syntheses of 2 s of audio each, one at a time, then
  ``--concurrent`` at once, against an instant speech server in another
  process (aiohttp, 100 ms of PCM per write, as fast as it can); reported:
  the time to the first piece and to the end p50/p99, and the engine's CPU
  per second of audio (this process only: the server's is its own).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import time

from aiohttp import web

from realtime_daemon.audio.speech import PCM_RATE, SpeechRequest
from realtime_daemon.config import Config
from realtime_daemon.engines.speech.load import load_synthesizer

SENTENCES = [
    "Sure.",
    "The weather today is sunny with a light breeze from the west.",
    "I have booked a table for two at eight o'clock, and I will send you the address "
    "and a reminder an hour before, so that you do not have to remember it yourself.",
]
SECONDS = 2.0  # of audio per openai synthesis


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def local(name: str, repeats: int) -> None:
    engine = load_synthesizer(Config(tts=name))
    assert engine is not None
    for text in SENTENCES:
        firsts, factors, cpus, child_cpus = [], [], [], []
        for _ in range(repeats):
            before, cpu = os.times(), time.process_time()
            ends: list[float] = []
            size = await _one(engine, firsts, ends, text, engine.voice)
            wall = ends[0]
            cpu, after = time.process_time() - cpu, os.times()
            seconds = size / 2 / PCM_RATE
            factors.append(wall / seconds)
            cpus.append(cpu / seconds)
            child_cpus.append(
                (
                    after.children_user
                    + after.children_system
                    - before.children_user
                    - before.children_system
                )
                / seconds
            )
        print(
            f"{name:6} {seconds:5.2f} s of audio ({len(text):3} chars): first audio "
            f"{statistics.median(firsts) * 1000:6.1f} ms, RTF {statistics.median(factors):.4f}, "
            f"daemon CPU {statistics.median(cpus) * 1000:5.2f} ms/s of audio, "
            f"program CPU {statistics.median(child_cpus) * 1000:5.1f} ms/s"
        )
    await engine.aclose()


def _serve(port: multiprocessing.SimpleQueue[int]) -> None:
    async def speech(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await response.prepare(request)
        piece = bytes(PCM_RATE // 10 * 2)  # 100 ms
        for _ in range(int(SECONDS * 10)):
            await response.write(piece)
        await response.write_eof()
        return response

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/v1/audio/speech", speech)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(run())


async def _one(
    engine: object, firsts: list[float], ends: list[float], text: str = "hi", voice: str = "alloy"
) -> int:
    size = 0
    started = time.perf_counter()

    def audio(piece: bytes) -> None:
        nonlocal size
        if not size:
            firsts.append(time.perf_counter() - started)
        size += len(piece)

    await engine.synthesize(SpeechRequest(text, voice), audio)  # type: ignore[attr-defined]
    ends.append(time.perf_counter() - started)
    return size


async def openai(requests: int, concurrent: int) -> None:
    context = multiprocessing.get_context("spawn")
    port: multiprocessing.SimpleQueue[int] = context.SimpleQueue()
    server = context.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port.get()}/v1"
    engine = load_synthesizer(Config(tts="openai", tts_url=(url,)))
    assert engine is not None
    try:
        for _ in range(20):  # warm: connections made, code paths run
            await _one(engine, [], [])
        for label, at_once in (("one at a time", 1), ("at once", concurrent)):
            firsts: list[float] = []
            ends: list[float] = []
            size = 0
            cpu = time.process_time()
            for _ in range(requests // at_once):
                sizes = await asyncio.gather(*(_one(engine, firsts, ends) for _ in range(at_once)))
                size += sum(sizes)
            cpu = time.process_time() - cpu
            print(
                f"openai {label} ({at_once}): first audio p50 "
                f"{statistics.median(firsts) * 1000:.2f} ms p99 {_p99(firsts) * 1000:.2f} ms, "
                f"2 s answer p50 {statistics.median(ends) * 1000:.2f} ms; engine CPU "
                f"{cpu / (size / 2 / PCM_RATE) * 1000:.3f} ms per second of audio"
            )
    finally:
        await engine.aclose()
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrent", type=int, default=50)
    args = parser.parse_args()
    for name, program in (("espeak", "espeak-ng"), ("flite", "flite")):
        if shutil.which(program) is None:
            print(f"{name}: {program} is not installed, skipped")
        else:
            asyncio.run(local(name, args.repeats))
    asyncio.run(openai(args.requests, args.concurrent))


if __name__ == "__main__":
    main()
