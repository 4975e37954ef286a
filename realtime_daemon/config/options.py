"""The options of ``realtime-daemon serve`` (and ``config``, which takes the same).

They are made from the :class:`~.config.Config` fields: the option's name is the
field's with dashes, its default the field's, its check the field's type and
constraints (``Meta(ge=1)`` is ``click.IntRange(min=1)``; a tuple is a repeatable
option), its help the field's description with the Markdown backticks taken out.
What a field's type does not tell click (choices, files, callbacks) is in
``_CLICK``. Each option is read from ``REALTIME_DAEMON_<OPTION>`` too; the README's
option table is checked against these options by a test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
import msgspec.inspect as mi

from realtime_daemon.config.settings import (
    ENDPOINTS,
    INSTANCE_NAME,
    LOG_FORMATS,
    LOG_LEVELS,
    LOOPS,
    PROTOCOLS,
    Config,
)

__all__ = ["serve_options"]

F = TypeVar("F", bound=Callable[..., Any])

_LIST_SEPARATOR = re.compile(r"[,\s]+")
_OPTION_SEPARATOR = re.compile(r"[,\s]+(?=[A-Za-z_][A-Za-z0-9_]*=)")
"""Between two ``KEY=VALUE`` in a variable: a comma or whitespace before the next key,
so that a JSON value may hold either."""


class _ListItem(click.ParamType[str]):
    """One value of a repeatable option; several in one environment variable are
    separated by commas or whitespace, the same for every list option."""

    name = "TEXT"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [item for item in _LIST_SEPARATOR.split(rv) if item]


class _URLList(_ListItem):
    """An http(s) URL."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        url = str(value).strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            self.fail(f"{value!r} is not an http:// or https:// URL", param, ctx)
        return url


class _EngineOption(click.ParamType[tuple[str, object]]):
    """``KEY=VALUE``: an engine option, its value JSON if it parses, else the text."""

    name = "KEY=VALUE"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [item.strip(", \t\n") for item in _OPTION_SEPARATOR.split(rv.strip()) if item]

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, object]:
        if isinstance(value, tuple):  # a default, already converted
            return value
        key, equals, text = str(value).partition("=")
        if not equals or not key.strip():
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        try:
            parsed: object = msgspec.json.decode(text)
        except msgspec.DecodeError:
            parsed = text
        return key.strip(), parsed


class _VoicePair(_EngineOption):
    """``OPENAI=ENGINE``: a session's voice and the engine's, both text."""

    name = "OPENAI=ENGINE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, object]:
        if isinstance(value, tuple):  # a default, already converted
            return value
        key, equals, voice = str(value).partition("=")
        if not equals or not key.strip() or not voice.strip():
            self.fail(f"{value!r} is not OPENAI=ENGINE", param, ctx)
        return key.strip(), voice.strip()


def _check_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith("/"):
        raise click.BadParameter(f"{value!r} must start with '/'", ctx=ctx, param=param)
    if value in ENDPOINTS:
        raise click.BadParameter(f"{value!r} is served by the daemon itself", ctx=ctx, param=param)
    return value


def _check_instance_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(INSTANCE_NAME, value):
        raise click.BadParameter(
            f"{value!r}: up to 32 letters, digits, '-' and '_'", ctx=ctx, param=param
        )
    return value


def _as_table(
    ctx: click.Context, param: click.Parameter, value: tuple[tuple[str, object], ...]
) -> dict[str, object]:
    return dict(value)  # the last of a repeated key wins


_FILE = click.Path(dir_okay=False)

_CLICK: dict[str, dict[str, Any]] = {
    "path": {"callback": _check_path},
    "responses_path": {"callback": _check_path},
    "protocol": {"type": click.Choice(PROTOCOLS)},
    "instance_name": {"callback": _check_instance_name},
    "log_format": {"type": click.Choice(LOG_FORMATS)},
    "log_level": {"type": click.Choice(LOG_LEVELS, case_sensitive=False)},
    "upstream_url": {"type": _URLList()},
    "stt_url": {"type": _URLList()},
    "tts_url": {"type": _URLList()},
    "tts_voices": {
        "param_decls": ("--tts-voice-map", "tts_voices"),
        "type": _VoicePair(),
        "callback": _as_table,
        "envvar": "REALTIME_DAEMON_TTS_VOICE_MAP",
    },
    "engine_options": {
        "param_decls": ("--engine-option", "engine_options"),
        "type": _EngineOption(),
        "callback": _as_table,
        # Named for one option, as it is given, rather than for the field.
        "envvar": "REALTIME_DAEMON_ENGINE_OPTION",
    },
    "auth_token_file": {"type": _FILE},
    "keys_file": {"type": _FILE},
    "secret_key_file": {"type": _FILE},
    "tls_certfile": {"type": _FILE},
    "tls_keyfile": {"type": _FILE},
    "loop": {"type": click.Choice(LOOPS)},
}
"""What click needs beyond a field's type: choices, file paths, checks, another name."""

_NOT_OPTIONS = frozenset({"models"})  # set in the config file only

_CONFIG_FILE = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    envvar="REALTIME_DAEMON_CONFIG",
    help="TOML file of settings (option names with underscores) and [[models]]; "
    "options and environment variables override it.",
)


def serve_options(command: F) -> F:
    """Add every option of ``serve`` to ``command``: one per setting, then ``--config``."""
    command = _CONFIG_FILE(command)
    info = mi.type_info(Config)
    assert isinstance(info, mi.StructType)
    # Applied last field first, so that --help lists them in the fields' order.
    for field in reversed(info.fields):
        if field.name not in _NOT_OPTIONS:
            command = _option(field)(command)
    return command


def _option(field: mi.Field) -> Callable[[F], F]:
    """The click option of one field: name, default, check and help from the field."""
    kind, description = _unwrap(field.type)
    spec: dict[str, Any] = dict(_CLICK.get(field.name, {}))
    decls = spec.pop("param_decls", ("--" + field.name.replace("_", "-"),))
    if isinstance(kind, mi.VarTupleType | mi.DictType):
        spec.setdefault("type", _ListItem())
        spec["multiple"] = True
    else:
        spec.setdefault("type", _param_type(kind))
        spec["default"] = field.default
    return click.option(*decls, help=description.replace("`", ""), **spec)


def _unwrap(kind: mi.Type) -> tuple[mi.Type, str]:
    """A field's type without ``| None`` and its metadata, and its description."""
    description = ""
    if isinstance(kind, mi.UnionType):
        kind = next(t for t in kind.types if not isinstance(t, mi.NoneType))
    if isinstance(kind, mi.Metadata):
        description = (kind.extra_json_schema or {}).get("description", "")
        kind = kind.type
    if isinstance(kind, mi.UnionType):  # Annotated[X | None, Meta(...)]
        kind = next(t for t in kind.types if not isinstance(t, mi.NoneType))
    return kind, description


def _param_type(kind: mi.Type) -> click.ParamType[Any] | None:
    """click's check for a number's range, from the field's ``Meta`` constraints."""
    if isinstance(kind, mi.IntType) and (kind.ge is not None or kind.le is not None):
        return click.IntRange(kind.ge, kind.le)
    if isinstance(kind, mi.FloatType) and kind.gt is not None:
        return click.FloatRange(min=kind.gt, min_open=True)
    if isinstance(kind, mi.FloatType) and kind.ge is not None:
        return click.FloatRange(min=kind.ge)
    return None  # click's own, from the default (TEXT for strings and None)
