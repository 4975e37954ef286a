"""Find and build the speech-to-text engine `--stt` names: built in, installed, or module:attr."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import cast

from realtime_daemon.audio.speech import Transcriber
from realtime_daemon.config import Config

__all__ = [
    "BUILTIN_TRANSCRIBERS",
    "ENTRY_POINT_GROUP",
    "SpeechLoadError",
    "TranscriberFactory",
    "available_transcribers",
    "load_transcriber",
]

BUILTIN_TRANSCRIBERS = {
    "openai": "realtime_daemon.engines.speech.openai:OpenAITranscriber",
    "pocketsphinx": "realtime_daemon.engines.speech.pocketsphinx:PocketsphinxTranscriber",
}
ENTRY_POINT_GROUP = "realtime_daemon.transcribers"

TranscriberFactory = Callable[[Config], Transcriber]
"""What ``--stt`` names: a callable (a class, say) taking the daemon's settings."""


class SpeechLoadError(Exception):
    """The speech-to-text engine cannot be found, imported or built; the message says
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
    spec = config.stt
    factory = _factory(spec)
    try:
        transcriber = factory(config)
    except ValueError as exc:
        raise SpeechLoadError(f"stt {spec!r}: {exc}") from None
    if not callable(getattr(transcriber, "transcribe", None)):
        raise SpeechLoadError(f"stt {spec!r}: {type(transcriber).__name__} has no transcribe()")
    return transcriber


def _factory(spec: str) -> TranscriberFactory:
    if ":" in spec:
        target = spec
    else:
        found = BUILTIN_TRANSCRIBERS.get(spec) or _entry_point(spec)
        if found is None:
            raise SpeechLoadError(
                f"unknown stt {spec!r}: choose one of {', '.join(available_transcribers())}"
                " or give module:attr"
            )
        target = found
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SpeechLoadError(f"stt {spec!r} is not of the form module:attr")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's to see
        raise SpeechLoadError(f"cannot import stt module {module_name!r}: {exc}") from None
    factory: object = module
    for part in attr.split("."):
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise SpeechLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise SpeechLoadError(f"stt {target!r} is not callable")
    return cast(TranscriberFactory, factory)


def available_transcribers() -> list[str]:
    """Built-in names, then those installed packages register."""
    installed = sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    return list(BUILTIN_TRANSCRIBERS) + [n for n in installed if n not in BUILTIN_TRANSCRIBERS]


def _entry_point(name: str) -> str | None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        return str(ep.value)
    return None
