"""Real speech, made in the test: espeak-ng or flite speak a sentence, as PCM16 at 24 kHz."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import pytest
import soxr

__all__ = ["RATE", "spoken"]

RATE = 24000
"""The Realtime API's PCM rate."""

_COMMANDS = {
    "espeak-ng": lambda text: ["espeak-ng", "-v", "en-us", "--stdout", text],
    "flite": lambda text: ["flite", "-o", "/dev/stdout", "-t", text],
}


def spoken(text: str, voice: str = "flite", rate: int = RATE) -> bytes:
    """``text`` spoken by ``voice`` (``espeak-ng`` or ``flite``), as PCM16 mono at ``rate``.

    Skips the test if that synthesiser is not installed (``.ci/run`` installs both).
    """
    if shutil.which(voice) is None:
        pytest.skip(f"{voice} is not installed (apt-get install {voice})")
    wav = subprocess.run(_COMMANDS[voice](text), capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as audio:
        assert (audio.getnchannels(), audio.getsampwidth()) == (1, 2)
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
        made = audio.getframerate()
    if made != rate:
        samples = soxr.resample(samples, made, rate)
    return bytes(samples.astype("<i2").tobytes())
