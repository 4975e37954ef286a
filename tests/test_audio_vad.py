"""Turn detection on audio whose edges no detector can misjudge: tone bursts between
digital silence, at 24 kHz PCM16 and 8 kHz G.711, timed by the audio's own clock."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from realtime_daemon.audio.errors import AudioError
from realtime_daemon.audio.formats import PCMA, PCMU, Format, decode, encode
from realtime_daemon.audio.turns import (
    SpeechStarted,
    SpeechStopped,
    TurnEvent,
    TurnSettings,
    aggressiveness,
    eagerness_silence_ms,
    level_floor_dbfs,
)
from realtime_daemon.audio.vad import FRAME_MS, ONSET_FRAMES, TurnDetector

TOLERANCE_MS = 30


def _burst(rate: int, ms: int, dbfs: float = -20.0, seed: int = 0) -> bytes:
    """A voiced-speech stand-in: 7 harmonics of a 180-240 Hz pitch with vibrato, at
    ``dbfs`` RMS, starting and stopping at full level (sharp edges)."""
    t = np.arange(rate * ms // 1000) / rate
    f0 = 180 + 60 * random.Random(seed).random()
    phase = 2 * math.pi * (f0 * t + 4 * np.sin(2 * math.pi * 5 * t))  # ±20 Hz at 5 Hz
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    rms = float(np.sqrt(np.mean(wave**2)))
    return (wave * (32768 * 10 ** (dbfs / 20) / rms)).astype("<i2").tobytes()


def _silence(rate: int, ms: int) -> bytes:
    return bytes(2 * (rate * ms // 1000))


def _noise(rate: int, ms: int, dbfs: float) -> bytes:
    noise = np.random.default_rng(7).standard_normal(rate * ms // 1000)
    return (noise * 32768 * 10 ** (dbfs / 20)).astype("<i2").tobytes()


def _through(fmt: Format | None, pcm: bytes) -> bytes:
    """``pcm`` as a client in ``fmt`` sends it and the daemon decodes it."""
    return pcm if fmt is None else decode(fmt, encode(fmt, pcm))


def _feed(
    pcm: bytes, rate: int, chunk_ms: float = 20, settings: TurnSettings | None = None
) -> list[TurnEvent]:
    detector = TurnDetector(settings or TurnSettings(), rate)
    size = 2 * max(1, round(rate * chunk_ms / 1000))
    events: list[TurnEvent] = []
    for at in range(0, len(pcm), size):
        events += detector.feed(pcm[at : at + size])
    return events


# Input rates and formats: 24 kHz PCM16 as sent, 8 kHz through either G.711 law.
INPUTS = [(24000, None), (8000, PCMU), (8000, PCMA)]


@pytest.mark.parametrize(("rate", "fmt"), INPUTS)
@pytest.mark.parametrize(("lead", "length"), [(730, 910), (1005, 333), (517, 2260)])
def test_a_burst_is_one_turn_timed_by_the_audio(
    rate: int, fmt: Format | None, lead: int, length: int
) -> None:
    """A burst gives speech_started at its start less 300 ms and speech_stopped at its
    end plus 500 ms (the defaults), each within 30 ms."""
    pcm = _through(fmt, _silence(rate, lead) + _burst(rate, length) + _silence(rate, 900))
    started, stopped = _feed(pcm, rate)
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    assert abs(started.audio_start_ms - (lead - 300)) <= TOLERANCE_MS
    assert abs(started.onset_ms - lead) <= TOLERANCE_MS
    assert abs(stopped.audio_end_ms - (lead + length + 500)) <= TOLERANCE_MS
    assert stopped.audio_end_ms == stopped.speech_end_ms + 500


@pytest.mark.parametrize(("rate", "fmt"), INPUTS)
def test_the_settings_set_the_padding_and_the_silence(rate: int, fmt: Format | None) -> None:
    """Other prefix_padding_ms and silence_duration_ms move the times by as much."""
    settings = TurnSettings(prefix_padding_ms=120, silence_duration_ms=250)
    pcm = _through(fmt, _silence(rate, 640) + _burst(rate, 500) + _silence(rate, 400))
    started, stopped = _feed(pcm, rate, settings=settings)
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    assert abs(started.audio_start_ms - (640 - 120)) <= TOLERANCE_MS
    assert abs(stopped.audio_end_ms - (640 + 500 + 250)) <= TOLERANCE_MS


def test_the_padding_does_not_reach_before_the_audio() -> None:
    """Speech 100 ms in, with 300 ms of padding, starts the turn's audio at 0."""
    pcm = _silence(24000, 100) + _burst(24000, 400) + _silence(24000, 600)
    started, _ = _feed(pcm, 24000)
    assert started == SpeechStarted(audio_start_ms=0, onset_ms=started.onset_ms)


@pytest.mark.parametrize(("rate", "fmt"), INPUTS)
def test_bursts_closer_than_the_silence_are_one_turn(rate: int, fmt: Format | None) -> None:
    """Two bursts 300 ms apart (less than the 500 ms silence) are one turn, ended by
    the second."""
    pcm = _burst(rate, 400, seed=1) + _silence(rate, 300) + _burst(rate, 600, seed=2)
    pcm = _through(fmt, _silence(rate, 500) + pcm + _silence(rate, 800))
    started, stopped = _feed(pcm, rate)
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    assert abs(started.audio_start_ms - 200) <= TOLERANCE_MS
    assert abs(stopped.audio_end_ms - (500 + 1300 + 500)) <= TOLERANCE_MS


@pytest.mark.parametrize(("rate", "fmt"), INPUTS)
def test_bursts_further_apart_are_two_turns(rate: int, fmt: Format | None) -> None:
    """Bursts 700 ms apart are two turns; the second's padding stops at the end of the
    first turn's audio (500 ms after its speech), not 300 ms before its onset."""
    pcm = _burst(rate, 400, seed=1) + _silence(rate, 700) + _burst(rate, 400, seed=2)
    pcm = _through(fmt, _silence(rate, 500) + pcm + _silence(rate, 800))
    events = _feed(pcm, rate)
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped] * 2
    first_end, second_start = events[1], events[2]
    assert isinstance(first_end, SpeechStopped) and isinstance(second_start, SpeechStarted)
    assert abs(first_end.audio_end_ms - 1400) <= TOLERANCE_MS
    assert second_start.audio_start_ms == first_end.audio_end_ms
    assert abs(second_start.onset_ms - 1600) <= TOLERANCE_MS


@pytest.mark.parametrize(("rate", "fmt"), INPUTS)
def test_chunk_sizes_do_not_change_the_events(rate: int, fmt: Format | None) -> None:
    """20 ms appends, 7 ms, 1 s, one sample, random odd sizes: the same events."""
    pcm = _burst(rate, 700, seed=3) + _silence(rate, 350) + _burst(rate, 250, seed=4)
    pcm = _through(fmt, _silence(rate, 410) + pcm + _silence(rate, 1200) + _burst(rate, 300))
    expected = _feed(pcm, rate)
    assert len(expected) == 3  # a turn, then one under way
    for chunk_ms in (7, 1000, 1000 / rate, 13.3, 31):
        assert _feed(pcm, rate, chunk_ms) == expected, chunk_ms
    detector, events, at = TurnDetector(TurnSettings(), rate), [], 0
    rng = random.Random(22)
    while at < len(pcm):
        size = 2 * rng.randrange(1, rate // 10)
        events += detector.feed(pcm[at : at + size])
        at += size
    assert events == expected


@pytest.mark.parametrize(("rate", "fmt"), INPUTS)
def test_speech_stopped_comes_when_the_silence_has_been_heard(
    rate: int, fmt: Format | None
) -> None:
    """speech_stopped is reported once the audio fed reaches its audio_end_ms, and
    within a frame of it (fed 10 ms at a time): by the audio's clock."""
    pcm = _through(fmt, _silence(rate, 300) + _burst(rate, 500) + _silence(rate, 1000))
    detector, size = TurnDetector(TurnSettings(), rate), 2 * rate // 100
    for at in range(0, len(pcm), size):
        for event in detector.feed(pcm[at : at + size]):
            if isinstance(event, SpeechStopped):
                assert event.audio_end_ms <= detector.ms <= event.audio_end_ms + FRAME_MS + 10
                return
    pytest.fail("no speech_stopped")


@pytest.mark.parametrize(("rate", "fmt"), INPUTS)
def test_silence_and_low_noise_are_no_turn(rate: int, fmt: Format | None) -> None:
    """Ten seconds of digital silence, or of white noise at -55 dBFS, give no event."""
    assert _feed(_through(fmt, _silence(rate, 10_000)), rate) == []
    assert _feed(_through(fmt, _noise(rate, 10_000, -55)), rate) == []


def test_one_speech_frame_flips_nothing() -> None:
    """A click one frame long neither starts a turn nor, heard in a turn's silence,
    extends it; a click of ONSET_FRAMES frames does start one (the control)."""
    rate, frame = 24000, FRAME_MS
    click = _burst(rate, frame, dbfs=-10)
    assert _feed(_silence(rate, 20 * frame) + click + _silence(rate, 1000), rate) == []
    longer = _burst(rate, ONSET_FRAMES * frame, dbfs=-10)
    assert len(_feed(_silence(rate, 20 * frame) + longer + _silence(rate, 1000), rate)) == 2
    turn = _silence(rate, 20 * frame) + _burst(rate, 20 * frame) + _silence(rate, 10 * frame)
    _, stopped = _feed(turn + click + _silence(rate, 1000), rate)
    assert stopped == SpeechStopped(audio_end_ms=40 * frame + 500, speech_end_ms=40 * frame)


def test_a_higher_threshold_needs_louder_audio() -> None:
    """A burst at -40 dBFS is a turn at threshold 0.2 and none at 0.8."""
    pcm = _silence(24000, 500) + _burst(24000, 600, dbfs=-40) + _silence(24000, 800)
    assert len(_feed(pcm, 24000, settings=TurnSettings(threshold=0.2))) == 2
    assert _feed(pcm, 24000, settings=TurnSettings(threshold=0.8)) == []


@pytest.mark.parametrize(("rate", "ms"), [(24000, 1234), (8000, 1234), (16000, 7)])
def test_ms_counts_the_audio_fed(rate: int, ms: int) -> None:
    """``ms`` is the audio fed so far, however it came; start_ms offsets it."""
    detector = TurnDetector(TurnSettings(), rate)
    detector.feed(_silence(rate, ms - 5))
    detector.feed(_silence(rate, 5))
    assert detector.ms == ms
    assert TurnDetector(TurnSettings(), rate, start_ms=90_000).ms == 90_000


def test_start_ms_moves_every_time() -> None:
    """A detector starting at 60 s reports its times 60 s later."""
    pcm = _silence(24000, 700) + _burst(24000, 500) + _silence(24000, 800)
    here = _feed(pcm, 24000)
    detector = TurnDetector(TurnSettings(), 24000, start_ms=60_000)
    there = detector.feed(pcm)
    assert there == [
        SpeechStarted(e.audio_start_ms + 60_000, e.onset_ms + 60_000)
        if isinstance(e, SpeechStarted)
        else SpeechStopped(e.audio_end_ms + 60_000, e.speech_end_ms + 60_000)
        for e in here
    ]


def test_reset_forgets_the_turn_and_keeps_the_clock() -> None:
    """A reset mid-turn drops the turn without an event; the clock goes on, and the
    next turn's padding does not reach back before the reset."""
    rate = 24000
    detector = TurnDetector(TurnSettings(), rate)
    [started] = detector.feed(_silence(rate, 400) + _burst(rate, 300))
    assert isinstance(started, SpeechStarted) and detector.in_turn
    detector.reset()
    assert detector.ms == 700 and not detector.in_turn
    assert detector.feed(_silence(rate, 100)) == []
    events = detector.feed(_burst(rate, 400) + _silence(rate, 700))
    assert events[0] == SpeechStarted(audio_start_ms=700, onset_ms=events[0].onset_ms)
    assert isinstance(events[1], SpeechStopped)
    assert abs(events[1].audio_end_ms - (1200 + 500)) <= TOLERANCE_MS


def test_reset_can_change_the_settings() -> None:
    """reset(settings) detects with the new settings from there on."""
    detector = TurnDetector(TurnSettings(), 24000)
    detector.reset(TurnSettings(silence_duration_ms=200))
    assert detector.settings.silence_duration_ms == 200
    _, stopped = detector.feed(_silence(24000, 500) + _burst(24000, 400) + _silence(24000, 400))
    assert isinstance(stopped, SpeechStopped)
    assert stopped.audio_end_ms == stopped.speech_end_ms + 200


def test_an_odd_number_of_bytes_is_refused_and_changes_nothing() -> None:
    """Half a sample is invalid_value on param audio, and the clock stays where it was."""
    detector = TurnDetector(TurnSettings(), 24000)
    detector.feed(_silence(24000, 10))
    with pytest.raises(AudioError) as caught:
        detector.feed(b"\x00" * 3)
    assert (caught.value.code, caught.value.param) == ("invalid_value", "audio")
    assert detector.ms == 10


def test_eagerness_is_a_silence_duration() -> None:
    """semantic_vad's eagerness maps to a silence: low waits longest, auto is medium."""
    assert [eagerness_silence_ms(e) for e in ("low", "medium", "auto", "high")] == [
        1500,
        800,
        800,
        300,
    ]
    with pytest.raises(AudioError) as caught:
        eagerness_silence_ms("eager")
    assert (caught.value.code, caught.value.param) == ("invalid_value", "eagerness")


def test_threshold_maps_to_mode_and_floor() -> None:
    """Each quarter of threshold is one webrtcvad mode; the floor rises from -65 to -25 dBFS."""
    assert [aggressiveness(t) for t in (0.0, 0.24, 0.25, 0.5, 0.74, 0.75, 1.0)] == [
        0,
        0,
        1,
        2,
        2,
        3,
        3,
    ]
    assert (level_floor_dbfs(0.0), level_floor_dbfs(0.5), level_floor_dbfs(1.0)) == (-65, -45, -25)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": math.nan}, "threshold"),
        ({"prefix_padding_ms": -1}, "prefix_padding_ms"),
        ({"silence_duration_ms": -5}, "silence_duration_ms"),
    ],
)
def test_settings_out_of_range_are_refused(fields: dict[str, float], param: str) -> None:
    """A setting out of range is invalid_value naming the field."""
    with pytest.raises(AudioError) as caught:
        TurnSettings(**fields)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.param) == ("invalid_value", param)


def test_the_defaults_are_openais() -> None:
    """threshold 0.5, prefix_padding_ms 300, silence_duration_ms 500."""
    assert TurnSettings() == TurnSettings(0.5, 300, 500)
