"""Helpers of the voice tests: audio whose edges no detector can misjudge, and appends."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from realtime_daemon.audio.formats import PCMA, PCMU, decode, encode

from .fake_stt import FakeSTT, fake_stts

__all__ = ["append_all", "bursts", "in_format", "stt"]

RATE = 24000


def bursts(*spans: tuple[str, int], rate: int = RATE) -> bytes:
    """PCM16 mono: ``("tone", ms)`` a loud 300 Hz tone with harmonics (speech-like to a
    detector), ``("silence", ms)`` digital silence, in order."""
    pieces = []
    for kind, ms in spans:
        n = rate * ms // 1000
        if kind == "silence":
            pieces.append(np.zeros(n, dtype="<i2"))
        else:
            t = np.arange(n) / rate
            wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((300, 600, 900), 1))
            pieces.append((wave * 6000).astype("<i2"))
    return b"".join(p.tobytes() for p in pieces)


def in_format(pcm24k: bytes, fmt: str) -> bytes:
    """24 kHz PCM16 as the session's format: itself, or G.711 at 8 kHz."""
    if fmt == "pcm16":
        return pcm24k
    samples = np.frombuffer(pcm24k, dtype="<i2")[::3].copy()  # a tone of 900 Hz at most
    return encode(PCMU if fmt == "g711_ulaw" else PCMA, samples.tobytes())


def chunks(audio: bytes, ms: int = 20, fmt: str = "pcm16") -> list[str]:
    """``audio`` as the base64 payloads of appends of ``ms`` each."""
    size = (RATE * 2 if fmt == "pcm16" else 8000) * ms // 1000
    return [base64.b64encode(audio[i : i + size]).decode() for i in range(0, len(audio), size)]


async def append_all(conn: Any, audio: bytes, ms: int = 20, fmt: str = "pcm16") -> None:
    """Send ``audio`` in appends of ``ms`` through an SDK connection, as fast as it goes."""
    for chunk in chunks(audio, ms, fmt):
        await conn.input_audio_buffer.append(audio=chunk)


def decoded(audio: bytes, fmt: str) -> bytes:
    return audio if fmt == "pcm16" else decode(PCMU if fmt == "g711_ulaw" else PCMA, audio)


@pytest.fixture
async def stt() -> AsyncIterator[FakeSTT]:
    """A fake transcription server."""
    async for servers in fake_stts(1):
        yield servers[0]


async def until(conn: Any, kind: str, seconds: float = 5) -> list[Any]:
    """An SDK connection's events up to and including the first of type ``kind``."""
    events = []
    async with asyncio.timeout(seconds):
        async for event in conn:
            events.append(event)
            if event.type == kind:
                return events
    raise AssertionError(f"connection ended before {kind}")
