"""PCM16 from one sample rate to another, by soxr (libsoxr), streamed or at once.

soxr's int16 output is dithered (TPDF, as libsoxr does by default for 16-bit
output), so two runs, or two ways of cutting the same input into chunks,
may differ by a least significant bit or two; lengths and timing do not.
:data:`Quality` trades delay and cost for stop-band rejection: ``"HQ"`` (the
default) for audio a person or a recogniser will hear, ``"QQ"`` (cubic
interpolation, about one sample of delay instead of tens of milliseconds)
where only the band well below the new Nyquist frequency matters, as for
turn detection (:mod:`.vad`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import soxr

from realtime_daemon.audio.errors import AudioError

__all__ = ["Quality", "Resampler", "resample"]

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
"""soxr's quality presets, quick to very high."""

_EMPTY: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)


def _samples(pcm: bytes) -> npt.NDArray[np.int16]:
    if len(pcm) % 2:
        raise AudioError(
            "invalid_value",
            f"PCM16 audio must be a whole number of 16-bit samples: {len(pcm)} bytes is odd",
            "audio",
        )
    return np.frombuffer(pcm, dtype="<i2")


def _check_rates(in_rate: int, out_rate: int) -> None:
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, not {in_rate} and {out_rate}")


class Resampler:
    """A streaming resampler of PCM16 mono: :meth:`process` chunks as they come,
    :meth:`flush` at the end. The output, chunks joined, is the same whatever the
    chunking (up to soxr's dither), and is aligned with the input: output sample
    ``k`` is at ``k / out_rate`` seconds of the input's timeline, only held back
    (by soxr's delay) until enough input has come.

    Equal rates pass the audio through untouched.

    Args:
        in_rate: the input's samples a second.
        out_rate: the output's.
        quality: soxr's preset.

    Raises:
        ValueError: a rate that is not positive.
    """

    __slots__ = ("_stream",)

    def __init__(self, in_rate: int, out_rate: int, quality: Quality = "HQ") -> None:
        _check_rates(in_rate, out_rate)
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        )

    def process(self, pcm: bytes) -> bytes:
        """The output ``pcm`` (PCM16 at the input rate) makes ready, as PCM16 at the output rate.

        Raises:
            AudioError: ``invalid_value`` (param ``audio``): an odd number of bytes.
        """
        samples = _samples(pcm)
        if self._stream is None:
            return bytes(pcm)
        if not len(samples):
            return b""
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(samples)
        return out.tobytes()

    def flush(self) -> bytes:
        """The rest of the output, held back for the filter; the resampler then
        starts afresh, as if new."""
        if self._stream is None:
            return b""
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(_EMPTY, last=True)
        self._stream.clear()
        return out.tobytes()


def resample(pcm: bytes, in_rate: int, out_rate: int, quality: Quality = "HQ") -> bytes:
    """``pcm`` (PCM16 mono at ``in_rate``) at ``out_rate``, in one call.

    Raises:
        AudioError: ``invalid_value`` (param ``audio``): an odd number of bytes.
        ValueError: a rate that is not positive.
    """
    _check_rates(in_rate, out_rate)
    samples = _samples(pcm)
    if in_rate == out_rate:
        return bytes(pcm)
    if not len(samples):
        return b""
    out: npt.NDArray[np.int16] = soxr.resample(samples, in_rate, out_rate, quality=quality)
    return out.tobytes()
