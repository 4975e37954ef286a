"""PCM16 mono in a RIFF/WAVE container: what a transcription upload carries, and what
local speech programs write (read as it streams by :class:`WavReader`)."""

from __future__ import annotations

import struct

__all__ = ["MAX_WAV_HEAD", "WavReader", "wav_bytes"]

MAX_WAV_HEAD = 4096
"""Bytes before a WAV stream's samples at most (RIFF header, ``fmt `` and other chunks)."""


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


class WavReader:
    """A WAV stream's PCM16 mono samples, read as the stream comes: :meth:`feed` each
    piece, get the samples it completes. Sans-I/O.

    The data chunk runs to the stream's end, whatever its size field says:
    programs writing to a pipe (espeak-ng) cannot go back to fill it in.

    Attributes:
        rate: the samples' rate, once the header was read (None before).
    """

    __slots__ = ("_head", "rate")

    def __init__(self) -> None:
        self._head: bytearray | None = bytearray()  # None once in the samples
        self.rate: int | None = None

    def feed(self, data: bytes) -> bytes:
        """The sample bytes ``data`` brings (maybe an odd number: a sample may be cut).

        Raises:
            ValueError: the stream is no PCM16 mono WAV, or its header is over
                :data:`MAX_WAV_HEAD` bytes.
        """
        if self._head is None:
            return data
        self._head += data
        return self._read_head()

    def _read_head(self) -> bytes:
        head = self._head
        assert head is not None
        if len(head) >= 12 and (head[:4] != b"RIFF" or head[8:12] != b"WAVE"):
            raise ValueError("not a WAV stream")
        at = 12
        while len(head) >= at + 8:
            kind, size = struct.unpack_from("<4sI", head, at)
            if kind == b"data":
                if self.rate is None:
                    raise ValueError("a WAV stream without a fmt chunk before its data")
                self._head = None
                return bytes(head[at + 8 :])
            if len(head) < at + 8 + size:
                break
            if kind == b"fmt ":
                fmt, channels, rate = struct.unpack_from("<HHI", head, at + 8)
                (bits,) = struct.unpack_from("<H", head, at + 22)
                if (fmt, channels, bits) != (1, 1, 16):
                    raise ValueError("a WAV stream that is not PCM16 mono")
                self.rate = rate
            at += 8 + size + (size & 1)  # chunks are padded to even sizes
        if len(head) > MAX_WAV_HEAD:
            raise ValueError(f"a WAV header over {MAX_WAV_HEAD} bytes")
        return b""
