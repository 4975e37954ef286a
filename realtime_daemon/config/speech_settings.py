"""The speech-to-text settings (``--stt``, ``--stt-url``, ...): their types and descriptions.

Fields of :class:`~.settings.Config`, kept here so that the settings module stays
one screenful per concern; :mod:`realtime_daemon.engines.speech` reads them.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

__all__ = ["SttAPIKey", "SttModel", "SttName", "SttTimeout", "SttURLs"]

SttName = Annotated[
    str,
    Meta(
        description="Speech-to-text engine for audio input (Realtime API): `openai` (an "
        "OpenAI-compatible `/v1/audio/transcriptions` at `--stt-url`), `pocketsphinx` "
        "(local, English; `pip install 'realtime-daemon[speech]'`), an installed one, or "
        "`module:attr`. Unset, audio input is refused."
    ),
]
SttURLs = Annotated[
    tuple[str, ...],
    Meta(
        description="stt openai: a replica's base URL, e.g. `http://whisper-1:8000/v1` "
        "(repeatable, failing over as `--upstream-url`)."
    ),
]
SttModel = Annotated[
    str,
    Meta(
        description="stt openai: the model sent upstream, whatever the session asks for "
        "(unset: the session's transcription model, else `whisper-1`)."
    ),
]
SttAPIKey = Annotated[
    str, Meta(description="stt openai: sent as `Authorization: Bearer`; never logged.")
]
SttTimeout = Annotated[
    float,
    Meta(
        gt=0,
        description="Seconds one transcription may take, failovers included; past it, "
        "it fails (`timeout`).",
    ),
]
