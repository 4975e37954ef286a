"""CPU per 20 ms append of input audio: base64, decoding and turn detection, in-process.

What the daemon must do with each ``input_audio_buffer.append`` before any
session machinery: base64-decode the audio, decode it to PCM16
(:func:`realtime_daemon.audio.formats.decode`: a copy for PCM16, a table
lookup for G.711), feed the turn detector (24 kHz resampled to 16 kHz, then
webrtcvad on 20 ms frames; 8 kHz straight in) and append it to the input
buffer. The audio is SECONDS of speech-like tone bursts (0.3 to 1.5 s, seven
harmonics with vibrato, -20 dBFS) between silences (0.2 to 1 s), cut into
20 ms appends and base64-encoded beforehand, as a client sends them. Each
stage is timed alone and then all together, by CPU time (``process_time``),
median of REPEATS runs; the detector's events are counted so that a run
that detects nothing shows.

    python benchmarks/vad_cost.py [--seconds 60] [--repeats 5]
"""

from __future__ import annotations

import argparse
import base64
import math
import random
import statistics
import time
from collections.abc import Callable

import numpy as np

from realtime_daemon.audio.buffer import InputBuffer
from realtime_daemon.audio.formats import PCM16, PCMA, PCMU, Format, decode, encode
from realtime_daemon.audio.turns import TurnSettings
from realtime_daemon.audio.vad import TurnDetector

APPEND_MS = 20


def speech_like(rate: int, seconds: float, seed: int = 22) -> bytes:
    """Tone bursts between silences, PCM16 at ``rate``."""
    rng = random.Random(seed)
    parts, total = [], 0
    while total < seconds * rate:
        n = int(rate * rng.uniform(0.3, 1.5))
        t = np.arange(n) / rate
        f0 = rng.uniform(150, 250)
        phase = 2 * math.pi * (f0 * t + 4 * np.sin(2 * math.pi * 5 * t))
        wave = sum(np.sin(k * phase) / k for k in range(1, 8))
        parts.append((wave * 3276 / np.sqrt(np.mean(wave**2))).astype("<i2").tobytes())
        gap = int(rate * rng.uniform(0.2, 1.0))
        parts.append(bytes(2 * gap))
        total += n + gap
    return b"".join(parts)[: 2 * int(seconds * rate)]


def appends(fmt: Format, seconds: float) -> list[bytes]:
    """The audio as a client sends it: base64 of 20 ms of ``fmt`` each."""
    wire = encode(fmt, speech_like(fmt.rate, seconds))
    size = fmt.rate * APPEND_MS // 1000 * fmt.sample_bytes
    return [base64.b64encode(wire[at : at + size]) for at in range(0, len(wire), size)]


def stages(fmt: Format, frames: list[bytes]) -> dict[str, Callable[[], int]]:
    """Each stage alone, and all together, as a function running over every append."""
    wire = [base64.b64decode(f) for f in frames]
    pcm = [decode(fmt, w) for w in wire]

    def b64() -> int:
        for f in frames:
            base64.b64decode(f)
        return 0

    def codec() -> int:
        for w in wire:
            decode(fmt, w)
        return 0

    def detector() -> int:
        d, events = TurnDetector(TurnSettings(), fmt.rate), 0
        for p in pcm:
            events += len(d.feed(p))
        return events

    def whole() -> int:
        d, events = TurnDetector(TurnSettings(), fmt.rate), 0
        buffer = InputBuffer(3600, fmt.rate)
        for f in frames:
            audio = decode(fmt, base64.b64decode(f))
            events += len(d.feed(audio))
            buffer.append(audio)
            if buffer.duration_ms > 10_000:
                buffer.clear()  # a session commits as it goes: keep the buffer small
        return events

    return {
        "base64 decode": b64,
        "format decode": codec,
        "turn detector": detector,
        "all (+ buffer)": whole,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.seconds:g} s of audio in {APPEND_MS} ms appends, median of {args.repeats}")
    print(f"{'format':<10} {'stage':<16} {'µs/append':>10} {'ms CPU/s':>9} {'events':>7}")
    for fmt in (PCM16, PCMU, PCMA):
        frames = appends(fmt, args.seconds)
        for name, run in stages(fmt, frames).items():
            times, events = [], 0
            for _ in range(args.repeats):
                start = time.process_time()
                events = run()
                times.append(time.process_time() - start)
            per_append = statistics.median(times) / len(frames) * 1e6
            per_second = per_append * (1000 / APPEND_MS) / 1000
            shown = str(events) if name in ("turn detector", "all (+ buffer)") else ""
            print(f"{fmt.beta:<10} {name:<16} {per_append:>10.2f} {per_second:>9.3f} {shown:>7}")


if __name__ == "__main__":
    main()
