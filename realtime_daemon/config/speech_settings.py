"""The speech settings (``--stt``, ``--stt-url``, ``--tts``, ...): their types and descriptions.

Fields of :class:`~.settings.Config`, kept here so that the settings module stays
one screenful per concern; :mod:`realtime_daemon.engines.speech` reads them.
:func:`engine_voice` is how a session's voice becomes the engine's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from msgspec import Meta

__all__ = [
    "SttAPIKey",
    "SttModel",
    "SttName",
    "SttTimeout",
    "SttURLs",
    "TtsAPIKey",
    "TtsMaxConcurrent",
    "TtsModel",
    "TtsName",
    "TtsTimeout",
    "TtsURLs",
    "TtsVoice",
    "TtsVoices",
    "engine_voice",
]

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

TtsName = Annotated[
    str,
    Meta(
        description="Text-to-speech engine for audio output (Realtime API): `openai` (an "
        "OpenAI-compatible `/v1/audio/speech` at `--tts-url`: Kokoro-FastAPI, speaches, "
        "vLLM-Omni...), `espeak` (local: the `espeak-ng` program), `flite` (local: the "
        "`flite` program), an installed one, or `module:attr`. Unset, audio output is refused."
    ),
]
TtsURLs = Annotated[
    tuple[str, ...],
    Meta(
        description="tts openai: a replica's base URL, e.g. `http://kokoro:8880/v1` "
        "(repeatable, failing over as `--upstream-url`)."
    ),
]
TtsModel = Annotated[
    str,
    Meta(description="tts openai: the speech model sent upstream (`kokoro`, `tts-1-hd`, ...)."),
]
TtsAPIKey = Annotated[
    str, Meta(description="tts openai: sent as `Authorization: Bearer`; never logged.")
]
TtsVoice = Annotated[
    str,
    Meta(
        description="The engine's voice when a session names none (unset: `alloy` for "
        "openai, `en-us` for espeak, `slt` for flite)."
    ),
]
TtsVoices = Annotated[
    dict[str, str],
    Meta(
        description="A session's voice as the engine's, `OPENAI=ENGINE` (repeatable; "
        "`[tts.voices]` in the config file), e.g. `alloy=af_bella`; a voice without one "
        "goes upstream as asked (openai), or is `--tts-voice` (local engines)."
    ),
]
TtsMaxConcurrent = Annotated[
    int,
    Meta(
        ge=1,
        description="Pieces of one response synthesized at once while its text streams on; "
        "audio still goes out in order.",
    ),
]
TtsTimeout = Annotated[
    float,
    Meta(
        gt=0,
        description="Seconds a synthesis may go without audio (to its first, failovers "
        "included, and between two pieces); past it, it fails (`timeout`).",
    ),
]


def engine_voice(
    asked: str | None, voices: Mapping[str, str], default: str, passthrough: bool
) -> str:
    """The engine's voice for the voice a session asked for.

    Args:
        asked: the session's voice (an OpenAI name, say), or None if it named none.
        voices: the ``[tts.voices]`` table, from session voices to the engine's.
        default: the engine's voice when the session names none (``Synthesizer.voice``).
        passthrough: whether the engine takes voice names it was not told of (an
            upstream: it knows its own voices) or not (a local engine).

    Returns:
        ``voices[asked]`` if there is one; else ``asked`` itself for a
        passthrough engine, ``default`` for another; ``default`` if none was asked.
    """
    if asked is None:
        return default
    if asked in voices:
        return voices[asked]
    return asked if passthrough else default
