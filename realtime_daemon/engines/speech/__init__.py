"""Speech-to-text engines: what turns a turn's audio into its transcript.

Each is a :class:`~realtime_daemon.audio.speech.Transcriber` built once from
the daemon's settings (``--stt`` and ``--stt-*``) by :mod:`.load`, from a
literal name map (:mod:`.openai`: any OpenAI-compatible
``/v1/audio/transcriptions``; :mod:`.pocketsphinx`: local), an installed
plugin, or ``module:attr``. :mod:`.answer` reads the openai engine's
answers. Imports :mod:`~realtime_daemon.audio`, :mod:`~realtime_daemon.config`
and the openai chat engine's HTTP/1.1 client.
"""
