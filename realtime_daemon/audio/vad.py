"""Turn detection: where speech starts and stops in a stream of PCM16, by the audio's clock.

A :class:`TurnDetector` is fed PCM16 at the session's input rate in chunks
of any size and cuts it into frames of :data:`FRAME_MS` at a rate webrtcvad
takes (8, 16, 32 or 48 kHz as they come; any other rate, such as the
Realtime API's 24 kHz, resampled to 16 kHz by soxr's quick preset: webrtcvad
itself looks only below 4 kHz, so the preset's weaker stop band does not
matter, and its delay is one sample instead of a frame). Every time it
reports is a millisecond of the audio fed since the detector was made (plus
``start_ms``), never the wall clock, so the same audio gives the same events
however it is chunked and however fast it comes.

A frame is speech when webrtcvad says so and its level is above a floor.
The floor does two things: ``threshold`` ("higher needs louder audio"), and
an end of speech as sharp as the audio's: webrtcvad holds its verdict a few
frames after speech ends (its own hangover, 60 to 150 ms), which over
silence would push every end late. ``threshold`` sets both (the mapping
is in :mod:`.turns`). Steady noise above the floor can pass for speech for
the first frames webrtcvad hears it, while it learns the noise.

Smoothing: a run of fewer than :data:`ONSET_FRAMES` speech frames is noise:
it neither starts a turn nor extends one, so one noisy frame does not flip
the state either way (and one quiet frame never ends a turn, which takes
``silence_duration_ms`` of frames that are not speech). A turn's onset is
the first frame of the run that confirms it, known a run later.

The events are those of the Realtime API: :class:`~.turns.SpeechStarted` with
``audio_start_ms`` the onset less ``prefix_padding_ms`` (not before the
detector's start, its last :meth:`~TurnDetector.reset` or the end of the
turn before), :class:`~.turns.SpeechStopped` with ``audio_end_ms`` the end of speech
plus ``silence_duration_ms``, reported when the detector has seen that much
silence, i.e. at that point of the audio's clock (within a frame).
"""

from __future__ import annotations

import numpy as np
import webrtcvad

from realtime_daemon.audio.errors import AudioError
from realtime_daemon.audio.resample import Resampler
from realtime_daemon.audio.turns import (
    SpeechStarted,
    SpeechStopped,
    TurnEvent,
    TurnSettings,
    aggressiveness,
    level_floor_dbfs,
)

__all__ = ["FRAME_MS", "ONSET_FRAMES", "TurnDetector"]

FRAME_MS = 20
"""The length of a frame webrtcvad judges (it takes 10, 20 or 30 ms)."""

ONSET_FRAMES = 2
"""Speech frames in a row that make speech (40 ms); a shorter run is noise."""

_VAD_RATES = frozenset((8000, 16000, 32000, 48000))
_RESAMPLED_RATE = 16000


class TurnDetector:
    """Turns in a stream of PCM16 mono at ``rate``, by the audio's own clock.

    Args:
        settings: the detection settings.
        rate: the input's samples a second (24000 for PCM16, 8000 for G.711 decoded).
        start_ms: where on the session's audio timeline the first sample fed is.

    Raises:
        ValueError: a rate that is not positive.
    """

    __slots__ = (
        "_fed",
        "_floor_ms",
        "_frame_bytes",
        "_frames",
        "_in_turn",
        "_level",
        "_pending",
        "_rate",
        "_resampler",
        "_run",
        "_run_start",
        "_settings",
        "_speech_end",
        "_start_ms",
        "_vad",
        "_vad_rate",
    )

    def __init__(self, settings: TurnSettings, rate: int, *, start_ms: int = 0) -> None:
        if rate <= 0:
            raise ValueError(f"the sample rate must be positive, not {rate}")
        self._rate = rate
        self._start_ms = start_ms
        self._fed = 0  # input samples
        self._vad_rate = rate if rate in _VAD_RATES else _RESAMPLED_RATE
        self._resampler = None if rate in _VAD_RATES else Resampler(rate, _RESAMPLED_RATE, "QQ")
        self._frame_bytes = 2 * self._vad_rate * FRAME_MS // 1000
        self._pending = bytearray()  # VAD-rate audio short of a frame
        self._frames = 0  # frames judged
        self._floor_ms = start_ms
        self._configure(settings)

    def _configure(self, settings: TurnSettings) -> None:
        self._settings = settings
        self._vad = webrtcvad.Vad(aggressiveness(settings.threshold))
        # The floor as a sum of squares over a frame, what _judge computes.
        rms = 32768.0 * 10 ** (level_floor_dbfs(settings.threshold) / 20)
        self._level = rms * rms * (self._frame_bytes // 2)
        self._in_turn = False
        self._run = 0  # speech frames in a row
        self._run_start = 0
        self._speech_end = 0

    @property
    def settings(self) -> TurnSettings:
        """The settings in force."""
        return self._settings

    @property
    def ms(self) -> int:
        """Where the audio fed so far ends, in ms on the detector's timeline."""
        return self._start_ms + self._fed * 1000 // self._rate

    @property
    def in_turn(self) -> bool:
        """Whether a turn has started and not stopped."""
        return self._in_turn

    def reset(self, settings: TurnSettings | None = None) -> None:
        """Forget any turn under way (no event for it) and start detecting afresh,
        with ``settings`` if given; the clock goes on, and no later turn's audio
        reaches back before this point."""
        self._floor_ms = self.ms
        self._configure(settings or self._settings)

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        """The events ``pcm`` (PCM16 at the detector's rate) completes, in order.

        Raises:
            AudioError: ``invalid_value`` (param ``audio``): an odd number of bytes.
        """
        if len(pcm) % 2:
            raise AudioError(
                "invalid_value",
                f"PCM16 audio must be a whole number of 16-bit samples: {len(pcm)} bytes is odd",
                "audio",
            )
        self._fed += len(pcm) // 2
        pending = self._pending
        pending += pcm if self._resampler is None else self._resampler.process(pcm)
        size = self._frame_bytes
        if len(pending) < size:
            return []
        events: list[TurnEvent] = []
        view = memoryview(pending)
        end = len(pending) - len(pending) % size
        try:
            for at in range(0, end, size):
                event = self._step(self._judge(view[at : at + size]))
                if event is not None:
                    events.append(event)
        finally:
            view.release()  # before the bytearray may change size
        del pending[:end]
        return events

    def _judge(self, frame: memoryview) -> bool:
        """Whether a frame is speech: webrtcvad's verdict, over the level floor."""
        # Every frame goes to webrtcvad, quiet or not, so its noise model sees them all.
        speech = self._vad.is_speech(frame, self._vad_rate)
        if not speech:
            return False
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        return float(np.dot(samples, samples)) >= self._level

    def _step(self, speech: bool) -> TurnEvent | None:
        """One frame judged: the event it makes, if any."""
        start = self._start_ms + self._frames * FRAME_MS
        self._frames += 1
        end = start + FRAME_MS
        if speech:
            if not self._run:
                self._run_start = start
            self._run += 1
            if self._run >= ONSET_FRAMES:
                self._speech_end = end
                if not self._in_turn:
                    self._in_turn = True
                    onset = self._run_start
                    padded = max(onset - self._settings.prefix_padding_ms, self._floor_ms)
                    return SpeechStarted(audio_start_ms=padded, onset_ms=onset)
                return None
        else:
            self._run = 0
        silence = self._settings.silence_duration_ms
        if self._in_turn and end > self._speech_end and end - self._speech_end >= silence:
            self._in_turn = False
            self._floor_ms = self._speech_end + silence
            return SpeechStopped(audio_end_ms=self._floor_ms, speech_end_ms=self._speech_end)
        return None
