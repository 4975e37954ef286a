"""Audio: formats, codecs, resampling, WAV and turn detection, with no I/O.

A bottom layer, beside :mod:`~realtime_daemon.wire` and
:mod:`~realtime_daemon.config`: pure functions and small stateful
processors fed bytes and driven by the audio's own clock (samples seen),
never the wall clock, so their timings are exact in tests. It imports
nothing of the daemon; dialects and engines import it.

- :mod:`.buffer`: the session's input audio buffer, bounded, taken out as turns;
- :mod:`.errors`: :class:`~.errors.AudioError`, a code, a message and a param;
- :mod:`.formats`: the Realtime API's formats (PCM16 24 kHz, G.711 μ-law and
  A-law 8 kHz) in GA and beta names, decoded to and encoded from PCM16;
- :mod:`.resample`: PCM16 from one rate to another by soxr, streamed or at once;
- :mod:`.turns`: turn detection's settings and events, and how the Realtime
  API's ``threshold`` and ``semantic_vad`` eagerness map onto the detector;
- :mod:`.vad`: :class:`~.vad.TurnDetector`, webrtcvad on the audio's own clock;
- :mod:`.wav`: PCM16 in a WAV container, for speech-to-text uploads.
- :mod:`.speech`: what a speech-to-text engine is (types and a Protocol).
"""
