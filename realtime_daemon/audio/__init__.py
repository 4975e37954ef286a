"""Audio: formats, codecs, resampling, WAV and turn detection, with no I/O.

A bottom layer, beside :mod:`~realtime_daemon.wire` and
:mod:`~realtime_daemon.config`: pure functions and small stateful
processors fed bytes and driven by the audio's own clock (samples seen),
never the wall clock, so their timings are exact in tests. It imports
nothing of the daemon; dialects and engines import it.

- :mod:`.wav`: PCM16 in a WAV container, for speech-to-text uploads.
- :mod:`.speech`: what a speech-to-text engine is (types and a Protocol).
"""
