"""Voice in at scale: N sessions streaming audio in 20 ms appends at real-time pace.

Targets, each started in its own process on the first CPU:

- ``daemon``: ``realtime-daemon serve --stt openai`` against an instant fake
  transcription server (``--serve-stt``: answers ``{"text": "ok"}`` at once);
- ``probe``: a bare aiohttp WebSocket server that base64-decodes each append
  and runs the same turn detector (``--serve-probe``): the floor.

Each session sends a turn pattern (800 ms of tone, 1500 ms of silence) over
and over, the sessions' turns spread evenly over the pattern (not all at
once). Reported per target: server CPU per second of audio, and for the
daemon, ``speech_stopped`` lateness (its arrival less the send of the append
holding ``audio_end_ms``) and committed -> transcription completed, p50/p99;
with ``--spoken``, each step of a whole turn (speech_stopped, committed,
transcript, response.created, first output audio) after the speech's end
and the silence window.

    python benchmarks/voice.py --sessions 100 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import time

import aiohttp
import numpy as np
from aiohttp import web
from run import Server, _self_cpu

FRAME = 480  # samples: 20 ms at 24 kHz
PATTERN_MS = (800, 1500)
SILENCE_S = 0.5  # server VAD's silence_duration_ms: a turn ends that long after its speech


def turn_pattern() -> bytes:
    tone, silence = (24 * ms for ms in PATTERN_MS)
    t = np.arange(tone) / 24000
    wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((300, 600, 900), 1))
    audio = np.concatenate([(wave * 6000).astype("<i2"), np.zeros(silence, dtype="<i2")])
    return audio.tobytes()


# -- the servers -----------------------------------------------------------------------


async def _stt(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"text": "ok"})


async def _tts(request: web.Request) -> web.Response:
    body = await request.json()
    return web.Response(body=bytes(len(body["input"]) * 1920), content_type="audio/pcm")


def serve_stt(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", _stt)
    app.router.add_post("/v1/audio/speech", _tts)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def serve_probe(port: int) -> None:
    from realtime_daemon.audio.turns import TurnSettings
    from realtime_daemon.audio.vad import TurnDetector

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        detector = TurnDetector(TurnSettings(), 24000)
        async for message in ws:
            event = json.loads(message.data)
            if event.get("type") == "input_audio_buffer.append":
                for change in detector.feed(base64.b64decode(event["audio"])):
                    kind = "speech_started" if hasattr(change, "onset_ms") else "speech_stopped"
                    await ws.send_str(json.dumps({"type": f"input_audio_buffer.{kind}"}))
        return ws

    app = web.Application()
    app.router.add_get("/v1/realtime", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# -- the load --------------------------------------------------------------------------


class Results:
    def __init__(self) -> None:
        self.stopped_late: list[float] = []
        self.transcribed: list[float] = []
        # --spoken: from the send of the append ending the speech, less the silence
        # window: when each step of the turn reached the client.
        self.steps: dict[str, list[float]] = {}
        self.audio_seconds = 0.0
        self.errors = 0


_STEPS = {
    "input_audio_buffer.speech_stopped": "speech_stopped",
    "input_audio_buffer.committed": "committed",
    "conversation.item.input_audio_transcription.completed": "transcript",
    "response.created": "response.created",
    "response.output_audio.delta": "first audio",
}


async def session(
    url: str, audio: bytes, until: float, results: Results, spoken: bool = False, lag: float = 0
) -> None:
    sent_at: dict[int, float] = {}  # audio ms at the end of each append -> when sent
    committed: dict[str, float] = {}
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:

        async def read() -> None:
            async for message in ws:
                event = json.loads(message.data)
                kind, now = event.get("type"), time.perf_counter()
                step = _STEPS.get(kind or "")
                if spoken and step is not None and speech_end and step not in seen:
                    seen.add(step)
                    late = now - speech_end[-1] - SILENCE_S
                    results.steps.setdefault(step, []).append(late)
                if kind == "input_audio_buffer.speech_stopped" and "audio_end_ms" in event:
                    end = event["audio_end_ms"]
                    holder = min((ms for ms in sent_at if ms >= end), default=None)
                    if holder is not None:
                        results.stopped_late.append(now - sent_at[holder])
                elif kind == "input_audio_buffer.committed":
                    committed[event["item_id"]] = now
                elif kind == "conversation.item.input_audio_transcription.completed":
                    start = committed.pop(event["item_id"], None)
                    if start is not None:
                        results.transcribed.append(now - start)
                elif kind == "error" or event.get("event") == "error":
                    results.errors += 1

        reader = asyncio.create_task(read())
        update = {
            "type": "realtime",
            "audio": {
                "input": {
                    "transcription": {"model": "whisper-1"},
                    "turn_detection": {"type": "server_vad", "create_response": spoken},
                }
            },
        }
        if spoken:
            update["output_modalities"] = ["audio"]
        await ws.send_json({"type": "session.update", "session": update})
        await asyncio.sleep(lag)  # sessions' turns spread over the pattern, as callers' are
        step, clock, start = FRAME * 2, 0, time.perf_counter()
        speech_end: list[float] = []
        seen: set[str] = set()
        period = sum(PATTERN_MS)
        while time.perf_counter() < until:
            offset = (clock // 20 * step) % len(audio)
            chunk = base64.b64encode(audio[offset : offset + step]).decode()
            await ws.send_str(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            clock += 20
            sent_at[clock] = time.perf_counter()
            if clock % period == PATTERN_MS[0]:  # this append ends the speech
                speech_end.append(sent_at[clock])
                seen.clear()
            if len(sent_at) > 500:
                del sent_at[min(sent_at)]
            results.audio_seconds += 0.02
            delay = start + clock / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.close()
        reader.cancel()


async def load(url: str, sessions: int, duration: float, spoken: bool = False) -> Results:
    results = Results()
    audio = turn_pattern()
    until = time.perf_counter() + duration
    period = sum(PATTERN_MS) / 1000
    await asyncio.gather(
        *(
            session(url, audio, until, results, spoken, period * i / sessions)
            for i in range(sessions)
        )
    )
    return results


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[100])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--serve-stt", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--spoken",
        action="store_true",
        help="whole voice turns: responses created and spoken (--tts against the fake server)",
    )
    args = parser.parse_args()
    if args.serve_stt:
        return serve_stt(args.serve_stt)
    if args.serve_probe:
        return serve_probe(args.serve_probe)
    me = os.path.abspath(__file__)
    stt = Server("stt", [sys.executable, me, "--serve-stt", "{port}"], cpus=frozenset({1}))
    stt.start()
    try:
        for n in args.sessions:
            for name, argv in (
                ("probe", [sys.executable, me, "--serve-probe", "{port}"]),
                (
                    "daemon",
                    [
                        os.path.join(os.path.dirname(sys.executable), "realtime-daemon"),
                        "serve", "--port", "{port}", "--log-level", "warning",
                        "--stt", "openai", "--stt-url", f"http://127.0.0.1:{stt.port}/v1",
                        "--max-connections", "10000", "--echo-delay-ms", "0",
                        *(["--tts", "openai", "--tts-url", f"http://127.0.0.1:{stt.port}/v1"]
                          if args.spoken else []),
                    ],
                ),
            ):  # fmt: skip
                server = Server(name, argv)
                server.start()
                try:
                    cpu, own = server.cpu_seconds(), _self_cpu()
                    url = server.url + "?model=echo"  # ?model= selects the Realtime dialect
                    results = asyncio.run(load(url, n, args.duration, args.spoken))
                    cpu, own = server.cpu_seconds() - cpu, _self_cpu() - own
                finally:
                    server.stop()
                per_second = cpu / max(results.audio_seconds, 1e-9) * 1000
                print(f"{name:7s} sessions={n:4d} cpu/s-of-audio={per_second:.3f} ms", end="")
                print(f" audio={results.audio_seconds:.0f} s errors={results.errors}", end="")
                print(f" load generator cpu={own / args.duration:.0%}")
                if name == "daemon":
                    print(f"        speech_stopped late: {percentiles(results.stopped_late)}")
                    print(f"        committed->transcribed: {percentiles(results.transcribed)}")
                    for step, values in results.steps.items():
                        print(f"        {step} after speech end + silence: {percentiles(values)}")
    finally:
        stt.stop()


if __name__ == "__main__":
    main()
