"""PCM16 mono in a RIFF/WAVE container: what a transcription upload carries."""

from __future__ import annotations

import struct

__all__ = ["wav_bytes"]


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """A WAV file holding ``pcm`` (16-bit signed little-endian mono) at ``rate`` Hz.

    Raises:
        ValueError: ``pcm`` has an odd number of bytes, or ``rate`` is not positive.
    """
    if len(pcm) % 2 or rate <= 0:
        raise ValueError("PCM16 needs an even number of bytes and a positive rate")
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,  # PCM format chunk size
        1,  # PCM
        1,  # mono
        rate,
        rate * 2,  # byte rate
        2,  # block align
        16,  # bits per sample
        b"data",
        len(pcm),
    )
    return header + pcm
