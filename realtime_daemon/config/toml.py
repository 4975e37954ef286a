"""The ``--config`` file: TOML read into the settings, and the settings written as TOML."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from realtime_daemon.config.settings import Config, masked

__all__ = ["ConfigFileError", "read_config_file", "to_toml"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ConfigFileError(Exception):
    """A ``--config`` file that cannot be used; the message names the file and the key."""


def read_config_file(path: Path) -> dict[str, object]:
    """The settings a TOML file sets, checked against :class:`Config`.

    Returns:
        the keys the file sets, with their decoded values.

    Raises:
        ConfigFileError: unreadable file, invalid TOML, unknown key, wrong type.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"{path}: {exc.strerror}") from None
    try:
        raw = _flat(msgspec.toml.decode(data), path)
        # The keys it sets, but typed and checked like the whole settings.
        config = msgspec.convert(raw, Config)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigFileError(f"{path}: {exc}") from None
    return {name: getattr(config, name) for name in raw}


def _flat(raw: dict[str, object], path: Path) -> dict[str, object]:
    """``raw`` with a ``[tts]`` table's keys as the ``tts_*`` settings they are
    (``name`` is ``tts`` itself): ``[tts.voices]`` is ``tts_voices``.

    Raises:
        ConfigFileError: a key both in the table and at the top level.
    """
    table = raw.get("tts")
    if not isinstance(table, dict):
        return raw
    flat = {k: v for k, v in raw.items() if k != "tts"}
    for key, value in table.items():
        name = "tts" if key == "name" else f"tts_{key}"
        if name in flat:
            raise ConfigFileError(f"{path}: {name} is set twice (also as [tts] {key})")
        flat[name] = value
    return flat


def to_toml(config: Config) -> str:
    """``config`` as a ``--config`` file would say it: every setting, secrets masked.

    Settings that are not set are written as comments; ``[[models]]``
    entries list only the options they set.
    """
    lines = [_toml_line(n, v) for n, v in msgspec.structs.asdict(config).items() if n != "models"]
    for model in config.models:
        lines += ["", "[[models]]"]
        fields = msgspec.structs.asdict(model).items()
        lines += [_toml_line(n, v) for n, v in fields if v is not None and v != {}]
    return "\n".join(lines) + "\n"


def _toml_line(name: str, value: object) -> str:
    if value is None:
        return f"# {name} = (not set)"
    return f"{name} = {_toml_value(masked(name, value))}"


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        # TOML has no null: a table's unset (None) entries are left out.
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # JSON's strings, numbers and booleans are TOML's too.
    return msgspec.json.encode(value).decode()


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else msgspec.json.encode(key).decode()
