"""The input audio buffer: bounded, taken out as turns, on the same clock as the detector."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_daemon.audio.buffer import MIN_COMMIT_MS, Committed, InputBuffer
from realtime_daemon.audio.errors import AudioError
from realtime_daemon.audio.turns import SpeechStarted, SpeechStopped, TurnSettings
from realtime_daemon.audio.vad import TurnDetector


def _ramp(rate: int, ms: int, first: int = 0) -> bytes:
    """``ms`` of PCM16 whose samples count up from ``first`` (mod 2**16), so any slice
    says where it came from."""
    n = rate * ms // 1000
    return (np.arange(first, first + n) % 65536).astype("<u2").tobytes()


def _at(pcm: bytes, rate: int, start_ms: int, end_ms: int) -> bytes:
    return pcm[2 * (rate * start_ms // 1000) : 2 * (rate * end_ms // 1000)]


@pytest.mark.parametrize("rate", [24000, 8000])
def test_take_returns_everything_appended(rate: int) -> None:
    """Appends taken with no bounds come back whole, with their place on the timeline."""
    buffer = InputBuffer(60, rate)
    pcm = _ramp(rate, 1000)
    for at in range(0, len(pcm), 962):  # odd-sized appends of whole samples
        buffer.append(pcm[at : at + 962])
    assert (buffer.duration_ms, buffer.start_ms, buffer.end_ms) == (1000, 0, 1000)
    assert buffer.take() == Committed(pcm=pcm, rate=rate, start_ms=0, end_ms=1000)
    assert (buffer.duration_ms, buffer.start_ms, buffer.end_ms) == (0, 1000, 1000)


def test_take_drops_before_start_and_keeps_after_end() -> None:
    """take(300, 800) returns 300-800 ms, drops 0-300 and keeps 800 on."""
    buffer = InputBuffer(60, 24000)
    pcm = _ramp(24000, 1200)
    buffer.append(pcm)
    taken = buffer.take(300, 800)
    assert taken == Committed(_at(pcm, 24000, 300, 800), 24000, 300, 800)
    assert (buffer.start_ms, buffer.end_ms, buffer.duration_ms) == (800, 1200, 400)
    assert buffer.take() == Committed(_at(pcm, 24000, 800, 1200), 24000, 800, 1200)


def test_bounds_are_kept_within_the_held_audio() -> None:
    """A start before the held audio, or an end after it, is the held audio's own."""
    buffer = InputBuffer(60, 8000)
    buffer.append(_ramp(8000, 500))
    buffer.take(0, 200)
    taken = buffer.take(start_ms=0, end_ms=10_000)
    assert (taken.start_ms, taken.end_ms) == (200, 500)
    assert taken.pcm == _at(_ramp(8000, 500), 8000, 200, 500)


def test_under_100_ms_is_refused_and_changes_nothing() -> None:
    """A take of 99 ms (or of nothing) is input_audio_buffer_commit_empty; the audio stays."""
    buffer = InputBuffer(60, 24000)
    with pytest.raises(AudioError) as caught:
        buffer.take()
    assert caught.value.code == "input_audio_buffer_commit_empty"
    assert "buffer only has 0.00ms of audio" in caught.value.message
    buffer.append(_ramp(24000, 99))
    with pytest.raises(AudioError) as caught:
        buffer.take()
    assert caught.value.code == "input_audio_buffer_commit_empty"
    assert (buffer.start_ms, buffer.duration_ms) == (0, 99)
    buffer.append(_ramp(24000, 1, first=99 * 24))
    assert buffer.take() == Committed(_ramp(24000, MIN_COMMIT_MS), 24000, 0, MIN_COMMIT_MS)


def test_a_span_under_100_ms_is_refused_though_more_is_held() -> None:
    """take(400, 450) of a second's audio is refused: the span is what counts."""
    buffer = InputBuffer(60, 24000)
    buffer.append(_ramp(24000, 1000))
    with pytest.raises(AudioError) as caught:
        buffer.take(400, 450)
    assert caught.value.code == "input_audio_buffer_commit_empty"
    assert buffer.duration_ms == 1000


def test_an_append_past_the_bound_is_refused_whole() -> None:
    """With 2 s held of a 2.5 s bound, a 1 s append is input_audio_buffer_full and adds
    nothing; the 2 s are still there to take, and after that the append fits."""
    buffer = InputBuffer(2.5, 8000)
    first = _ramp(8000, 2000)
    buffer.append(first)
    with pytest.raises(AudioError) as caught:
        buffer.append(_ramp(8000, 1000))
    assert (caught.value.code, caught.value.param) == ("input_audio_buffer_full", "audio")
    assert "at most 2.5 s" in caught.value.message
    assert buffer.duration_ms == 2000
    assert buffer.take().pcm == first
    buffer.append(_ramp(8000, 1000))
    assert buffer.duration_ms == 1000


def test_the_bound_itself_fits() -> None:
    """Exactly max_seconds fits; one more sample does not."""
    buffer = InputBuffer(1, 24000)
    buffer.append(_ramp(24000, 1000))
    with pytest.raises(AudioError):
        buffer.append(b"\x00\x00")
    assert buffer.duration_ms == 1000


def test_clear_keeps_the_clock() -> None:
    """clear() drops the audio; the next append goes on from where the cleared ended."""
    buffer = InputBuffer(60, 24000)
    buffer.append(_ramp(24000, 700))
    buffer.clear()
    assert (buffer.start_ms, buffer.end_ms, buffer.duration_ms) == (700, 700, 0)
    buffer.append(_ramp(24000, 300))
    taken = buffer.take()
    assert (taken.start_ms, taken.end_ms, taken.pcm) == (700, 1000, _ramp(24000, 300))


def test_start_ms_offsets_the_timeline() -> None:
    """A buffer starting at 5 s reports its times 5 s later and takes by them."""
    buffer = InputBuffer(60, 8000, start_ms=5000)
    buffer.append(_ramp(8000, 1000))
    taken = buffer.take(5200, 5700)
    assert (taken.start_ms, taken.end_ms) == (5200, 5700)
    assert taken.pcm == _at(_ramp(8000, 1000), 8000, 200, 700)


def test_an_odd_number_of_bytes_is_refused() -> None:
    """Half a sample is invalid_value on param audio, and adds nothing."""
    buffer = InputBuffer(60, 24000)
    with pytest.raises(AudioError) as caught:
        buffer.append(b"\x00\x00\x00")
    assert (caught.value.code, caught.value.param) == ("invalid_value", "audio")
    assert buffer.end_ms == 0


def test_bad_bounds_are_programming_errors() -> None:
    """A bound or a rate that is not positive is ValueError."""
    with pytest.raises(ValueError, match="positive"):
        InputBuffer(0, 24000)
    with pytest.raises(ValueError, match="positive"):
        InputBuffer(10, 0)


def test_the_detector_and_the_buffer_share_a_clock() -> None:
    """Audio appended to the buffer and fed to the detector: taking the detector's
    audio_start_ms to audio_end_ms gives exactly that span, the burst inside it."""
    rate = 24000
    t = np.arange(rate * 600 // 1000) / rate
    burst = (3000 * np.sin(2 * np.pi * 220 * t * (1 + 0.02 * np.sin(30 * t)))).astype("<i2")
    pcm = bytes(2 * rate) + burst.tobytes() + bytes(2 * rate)
    buffer, detector = InputBuffer(60, rate), TurnDetector(TurnSettings(), rate)
    events = []
    for at in range(0, len(pcm), 960):
        buffer.append(pcm[at : at + 960])
        events += detector.feed(pcm[at : at + 960])
    started, stopped = events
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    turn = buffer.take(started.audio_start_ms, stopped.audio_end_ms)
    assert (turn.start_ms, turn.end_ms) == (started.audio_start_ms, stopped.audio_end_ms)
    assert turn.pcm == _at(pcm, rate, started.audio_start_ms, stopped.audio_end_ms)
    assert burst.tobytes() in turn.pcm
