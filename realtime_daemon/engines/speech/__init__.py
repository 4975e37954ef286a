"""Speech engines: what turns a turn's audio into its transcript, and text into speech.

Each speech-to-text engine is a :class:`~realtime_daemon.audio.speech.Transcriber`
built once from the daemon's settings (``--stt`` and ``--stt-*``) by
:mod:`.load`, from a literal name map (:mod:`.openai`: any OpenAI-compatible
``/v1/audio/transcriptions``; :mod:`.pocketsphinx`: local), an installed
plugin, or ``module:attr``. :mod:`.answer` reads the openai engine's
answers. Each text-to-speech engine is a
:class:`~realtime_daemon.audio.speech.Synthesizer`, built the same way from
``--tts`` and ``--tts-*`` (:mod:`.openai_tts`: any OpenAI-compatible
``/v1/audio/speech``; :mod:`.espeak`: the local ``espeak-ng`` and ``flite``
programs). Imports :mod:`~realtime_daemon.audio`, :mod:`~realtime_daemon.config`
and the openai chat engine's HTTP/1.1 client.
"""
