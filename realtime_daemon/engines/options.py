"""An engine's own options: a msgspec Struct it declares, read from the settings.

An engine factory (a class, or any callable) that has an ``Options`` attribute, a
``msgspec.Struct`` (``frozen=True, kw_only=True``), is called as
``factory(config, options)`` with an ``Options`` instance; one without is called
as ``factory(config)``. The values, each over the one before:

1. the Struct's defaults;
2. the daemon's setting of the same name, for the names of
   :data:`~realtime_daemon.config.ENGINE_SETTINGS` (``--upstream-url``,
   ``--echo-delay-ms``, ...: the built-in engines' options in earlier versions);
3. ``[engine_options]`` and ``--engine-option KEY=VALUE``;
4. for a ``[[models]]`` entry: its own engine settings, then its
   ``[models.options]``.

The last two are :attr:`Config.engine_options` of the config the engine gets
(:meth:`Config.for_model` merges a model's). The loader refuses a key that no
engine declares and a value of the wrong type, naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec

from realtime_daemon.config import ENGINE_SETTINGS, Config
from realtime_daemon.engines.base import Engine, RelayEngine, StreamEngine

__all__ = [
    "EngineOptionError",
    "OptionsFactory",
    "check_options",
    "declared_options",
    "option_names",
    "read_options",
]

S = TypeVar("S", bound=msgspec.Struct)

_AT_KEY = re.compile(r"(.*) - at `\$\.(\w+)`$")
_MISSING = re.compile(r"Object missing required field `(\w+)`")


OptionsFactory = Callable[[Config, Any], "Engine | RelayEngine | StreamEngine"]
"""A factory that declares ``Options``: called with the settings and an ``Options``."""


class EngineOptionError(Exception):
    """An engine option that is unknown or of the wrong type; the message names it."""


def declared_options(factory: Callable[..., object], spec: str) -> type[msgspec.Struct] | None:
    """The ``Options`` Struct the factory of engine ``spec`` declares, or None.

    Raises:
        EngineOptionError: ``Options`` is there but not a msgspec Struct.
    """
    options = getattr(factory, "Options", None)
    if options is None:
        return None
    if not (isinstance(options, type) and issubclass(options, msgspec.Struct)):
        raise EngineOptionError(f"engine {spec!r}: Options is not a msgspec.Struct")
    return options


def option_names(options: type[msgspec.Struct] | None) -> frozenset[str]:
    """The keys an engine with these ``Options`` takes (none without)."""
    if options is None:
        return frozenset()
    return frozenset(field.name for field in msgspec.structs.fields(options))


def check_options(given: Iterable[str], takes: Iterable[str], what: str) -> None:
    """Refuse the keys ``given`` to ``what`` that are not in ``takes``.

    Raises:
        EngineOptionError: naming the first unknown key, and the known ones.
    """
    known = sorted(takes)
    for key in given:
        if key not in known:
            choices = ", ".join(known) if known else "none"
            raise EngineOptionError(f"{what}: unknown option {key!r} (known: {choices})")


def read_options(options: type[S], config: Config, what: str = "engine") -> S:
    """The ``options`` an engine built with ``config`` gets (see the module's list).

    Keys of ``config.engine_options`` that ``options`` does not declare are left to
    :func:`check_options`: with ``[[models]]``, they may be another engine's.

    Raises:
        EngineOptionError: a value of the wrong type, or a required option unset;
            the message starts with ``what``.
    """
    names = option_names(options)
    values: dict[str, Any] = {n: getattr(config, n) for n in ENGINE_SETTINGS if n in names}
    values.update((k, v) for k, v in config.engine_options.items() if k in names)
    try:
        return msgspec.convert(values, options)
    except msgspec.ValidationError as exc:
        raise EngineOptionError(f"{what}: {_naming_the_key(str(exc))}") from None


def _naming_the_key(message: str) -> str:
    """msgspec's ``Expected `float`, got `str` - at `$.key``` as ``option 'key': ...``."""
    if at := _AT_KEY.fullmatch(message):
        return f"option {at[2]!r}: {at[1]}"
    if missing := _MISSING.fullmatch(message):
        return f"option {missing[1]!r} is required"
    return message
