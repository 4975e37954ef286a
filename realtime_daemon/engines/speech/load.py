"""Find and build the speech engines `--stt` and `--tts` name: built in, installed, module:attr."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Mapping
from typing import cast

from realtime_daemon.audio.speech import Synthesizer, Transcriber
from realtime_daemon.config import Config

__all__ = [
    "BUILTIN_SYNTHESIZERS",
    "BUILTIN_TRANSCRIBERS",
    "ENTRY_POINT_GROUP",
    "SYNTHESIZER_GROUP",
    "SpeechLoadError",
    "SynthesizerFactory",
    "TranscriberFactory",
    "available_synthesizers",
    "available_transcribers",
    "load_synthesizer",
    "load_transcriber",
]

BUILTIN_TRANSCRIBERS = {
    "openai": "realtime_daemon.engines.speech.openai:OpenAITranscriber",
    "pocketsphinx": "realtime_daemon.engines.speech.pocketsphinx:PocketsphinxTranscriber",
}
ENTRY_POINT_GROUP = "realtime_daemon.transcribers"

BUILTIN_SYNTHESIZERS = {
    "openai": "realtime_daemon.engines.speech.openai_tts:OpenAISynthesizer",
    "espeak": "realtime_daemon.engines.speech.espeak:EspeakSynthesizer",
    "flite": "realtime_daemon.engines.speech.espeak:FliteSynthesizer",
}
SYNTHESIZER_GROUP = "realtime_daemon.synthesizers"

TranscriberFactory = Callable[[Config], Transcriber]
"""What ``--stt`` names: a callable (a class, say) taking the daemon's settings."""
SynthesizerFactory = Callable[[Config], Synthesizer]
"""What ``--tts`` names: the same, building a synthesizer."""


class SpeechLoadError(Exception):
    """The speech engine cannot be found, imported or built; the message says
    why in one line."""


def load_transcriber(config: Config) -> Transcriber | None:
    """The transcriber ``config.stt`` names, built from ``config``; None without ``--stt``.

    Building one opens nothing (connections and workers are made on first use),
    so the command line builds it to check the settings before binding.

    Raises:
        SpeechLoadError: unknown name, failed import, missing or uncallable
            attribute, a factory refusing the settings (it raised ``ValueError``),
            or what it built has no ``transcribe``.
    """
    if config.stt is None:
        return None
    factory = _factory("stt", config.stt, BUILTIN_TRANSCRIBERS, ENTRY_POINT_GROUP)
    return cast(Transcriber, _build("stt", config, factory, "transcribe"))


def load_synthesizer(config: Config) -> Synthesizer | None:
    """The synthesizer ``config.tts`` names, built from ``config``; None without ``--tts``.

    As :func:`load_transcriber`: building one opens nothing, and the command
    line builds it to check the settings (a local engine's program among them).

    Raises:
        SpeechLoadError: as :func:`load_transcriber`'s, or what was built has no
            ``synthesize``.
    """
    if config.tts is None:
        return None
    factory = _factory("tts", config.tts, BUILTIN_SYNTHESIZERS, SYNTHESIZER_GROUP)
    return cast(Synthesizer, _build("tts", config, factory, "synthesize"))


def _build(kind: str, config: Config, factory: Callable[[Config], object], method: str) -> object:
    spec = config.stt if kind == "stt" else config.tts
    try:
        engine = factory(config)
    except ValueError as exc:
        raise SpeechLoadError(f"{kind} {spec!r}: {exc}") from None
    if not callable(getattr(engine, method, None)):
        raise SpeechLoadError(f"{kind} {spec!r}: {type(engine).__name__} has no {method}()")
    return engine


def _factory(
    kind: str, spec: str, builtins: Mapping[str, str], group: str
) -> Callable[[Config], object]:
    if ":" in spec:
        target = spec
    else:
        found = builtins.get(spec) or _entry_point(group, spec)
        if found is None:
            names = ", ".join(_available(builtins, group))
            raise SpeechLoadError(
                f"unknown {kind} {spec!r}: choose one of {names} or give module:attr"
            )
        target = found
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SpeechLoadError(f"{kind} {spec!r} is not of the form module:attr")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's to see
        raise SpeechLoadError(f"cannot import {kind} module {module_name!r}: {exc}") from None
    factory: object = module
    for part in attr.split("."):
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise SpeechLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise SpeechLoadError(f"{kind} {target!r} is not callable")
    return cast(Callable[[Config], object], factory)


def available_transcribers() -> list[str]:
    """Built-in names, then those installed packages register."""
    return _available(BUILTIN_TRANSCRIBERS, ENTRY_POINT_GROUP)


def available_synthesizers() -> list[str]:
    """Built-in names, then those installed packages register."""
    return _available(BUILTIN_SYNTHESIZERS, SYNTHESIZER_GROUP)


def _available(builtins: Mapping[str, str], group: str) -> list[str]:
    installed = sorted(ep.name for ep in importlib.metadata.entry_points(group=group))
    return list(builtins) + [n for n in installed if n not in builtins]


def _entry_point(group: str, name: str) -> str | None:
    for ep in importlib.metadata.entry_points(group=group, name=name):
        return str(ep.value)
    return None
