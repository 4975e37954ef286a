"""Resampling: a sine keeps its frequency, phase and length; chunking changes nothing."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from realtime_daemon.audio.errors import AudioError
from realtime_daemon.audio.resample import Quality, Resampler, resample

RATES = [(24000, 16000), (8000, 16000), (24000, 8000)]


def _sine(rate: int, seconds: float, hz: float = 440.0, amplitude: float = 10000.0) -> bytes:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()


def _array(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int64)


def _streamed(pcm: bytes, in_rate: int, out_rate: int, sizes: list[int]) -> bytes:
    """``pcm`` through one Resampler in chunks of ``sizes`` samples (cycled)."""
    resampler = Resampler(in_rate, out_rate)
    out, at, i = [], 0, 0
    while at < len(pcm):
        n = 2 * sizes[i % len(sizes)]
        out.append(resampler.process(pcm[at : at + n]))
        at, i = at + n, i + 1
    out.append(resampler.flush())
    return b"".join(out)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATES)
@pytest.mark.parametrize("quality", ["HQ", "QQ"])
def test_a_sine_keeps_its_frequency_phase_and_length(
    in_rate: int, out_rate: int, quality: Quality
) -> None:
    """One second of 440 Hz comes out as one second of the same sine sampled at the
    new rate, sample for sample (edges aside), within a few steps of 16 bits."""
    resampler = Resampler(in_rate, out_rate, quality)
    out = _array(resampler.process(_sine(in_rate, 1.0)) + resampler.flush())
    assert abs(len(out) - out_rate) <= 2
    expected = 10000 * np.sin(2 * math.pi * 440 * np.arange(len(out)) / out_rate)
    edge = out_rate // 100  # the filter's ramp at either end: 10 ms
    assert np.abs(out - expected)[edge:-edge].max() <= 8


@pytest.mark.parametrize(("in_rate", "out_rate"), RATES)
def test_the_one_shot_call_matches_the_stream(in_rate: int, out_rate: int) -> None:
    """resample() gives what a Resampler gives, processed and flushed."""
    pcm = _sine(in_rate, 0.5, hz=700)
    resampler = Resampler(in_rate, out_rate)
    streamed = _array(resampler.process(pcm) + resampler.flush())
    once = _array(resample(pcm, in_rate, out_rate))
    assert len(once) == len(streamed)
    assert np.abs(once - streamed).max() <= 2  # soxr's dither


@pytest.mark.parametrize(("in_rate", "out_rate"), RATES)
def test_chunking_changes_nothing(in_rate: int, out_rate: int) -> None:
    """Any cutting of the input (one sample, 7 ms, 20 ms, odd sizes, one second) gives
    the one-call output: the same length, the same samples up to soxr's dither."""
    pcm = _sine(in_rate, 1.3, hz=300) + _sine(in_rate, 0.7, hz=1800, amplitude=3000)
    whole = _array(_streamed(pcm, in_rate, out_rate, [len(pcm)]))
    rng = random.Random(22)
    for sizes in (
        [1],
        [in_rate * 7 // 1000],
        [in_rate // 50],
        [in_rate],
        [rng.randrange(1, 900) for _ in range(50)],
    ):
        cut = _array(_streamed(pcm, in_rate, out_rate, sizes))
        assert len(cut) == len(whole), sizes[:3]
        assert np.abs(cut - whole).max() <= 2, sizes[:3]


def test_a_flushed_resampler_starts_afresh() -> None:
    """After flush, the next signal comes out as from a new resampler."""
    first, second = _sine(24000, 0.3), _sine(24000, 0.2, hz=900)
    used = Resampler(24000, 16000)
    used.process(first)
    used.flush()
    again = _array(used.process(second) + used.flush())
    fresh = Resampler(24000, 16000)
    new = _array(fresh.process(second) + fresh.flush())
    assert len(again) == len(new)
    assert np.abs(again - new).max() <= 2


def test_equal_rates_pass_through() -> None:
    """A resampler between equal rates returns its input, and holds nothing back."""
    pcm = _sine(16000, 0.1)
    resampler = Resampler(16000, 16000)
    assert resampler.process(pcm) == pcm
    assert resampler.flush() == b""
    assert resample(pcm, 16000, 16000) == pcm


def test_empty_input_gives_empty_output() -> None:
    """Nothing in, nothing out, in either call."""
    assert Resampler(24000, 16000).process(b"") == b""
    assert resample(b"", 24000, 16000) == b""


def test_an_odd_number_of_bytes_is_refused() -> None:
    """Half a sample is invalid_value on param audio, in either call."""
    for call in (
        lambda: Resampler(24000, 16000).process(b"\x00"),
        lambda: resample(b"\x00", 8000, 16000),
    ):
        with pytest.raises(AudioError) as caught:
            call()
        assert (caught.value.code, caught.value.param) == ("invalid_value", "audio")


def test_a_rate_must_be_positive() -> None:
    """A zero or negative rate is a programming error, ValueError."""
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16000)
    with pytest.raises(ValueError, match="positive"):
        resample(b"", 24000, -1)
