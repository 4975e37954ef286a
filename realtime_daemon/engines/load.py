"""Find an engine factory by name: built in, installed, or ``module:attr``."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import cast

import msgspec

from realtime_daemon.config import Config
from realtime_daemon.engines.adapt import AnswerRelay
from realtime_daemon.engines.base import Engine, EngineFactory, RelayEngine, StreamEngine
from realtime_daemon.engines.options import (
    EngineOptionError,
    OptionsFactory,
    check_options,
    declared_options,
    option_names,
    read_options,
)
from realtime_daemon.engines.routes import Route, Routes
from realtime_daemon.engines.stream import StreamAdapter

__all__ = [
    "BUILTIN_ENGINES",
    "ENTRY_POINT_GROUP",
    "EngineLoadError",
    "as_engine",
    "build_routes",
    "load_engine",
]

BUILTIN_ENGINES = {
    "echo": "realtime_daemon.engines.echo:EchoEngine",
    "openai": "realtime_daemon.engines.openai:OpenAIEngine",
}
ENTRY_POINT_GROUP = "realtime_daemon.engines"


class EngineLoadError(Exception):
    """The engine cannot be found or imported; the message says why in one line."""


def load_engine(spec: str) -> EngineFactory:
    """Resolve an engine spec to its factory.

    Args:
        spec: ``module:attr`` naming a factory (a callable taking the
            :class:`~realtime_daemon.config.Config`, and its options if it
            declares ``Options``: see :mod:`.options`; an engine class is
            one), a built-in name (``echo``), or the name of an entry point
            in the ``realtime_daemon.engines`` group.

    Raises:
        EngineLoadError: unknown name, failed import, missing attribute, or
            an attribute that is not callable.
    """
    if ":" not in spec:
        target = BUILTIN_ENGINES.get(spec) or _entry_point(spec)
        if target is None:
            raise EngineLoadError(
                f"unknown engine {spec!r}: choose one of {', '.join(available_engines())}"
                " or give module:attr"
            )
    else:
        target = spec
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise EngineLoadError(f"engine {spec!r} is not of the form module:attr")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's to see
        raise EngineLoadError(f"cannot import engine module {module_name!r}: {exc}") from None
    factory: object = module
    for part in attr.split("."):
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise EngineLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise EngineLoadError(f"engine {target!r} is not callable")
    return cast(EngineFactory, factory)


def build_routes(config: Config) -> Routes:
    """The daemon's routing table: ``config.engine`` for every model, or ``config.models``.

    Each engine is built with its options (:mod:`.options`).

    Raises:
        EngineLoadError: an engine cannot be loaded, refuses its settings (its
            factory raised ``ValueError``), or is given an option it does not
            take (with ``[[models]]``: a top-level one no engine takes) or one
            of the wrong type.
    """
    try:
        return _models(config) if config.models else _single(config)
    except EngineOptionError as exc:
        raise EngineLoadError(str(exc)) from None


def _single(config: Config) -> Routes:
    factory = load_engine(config.engine)
    options = declared_options(factory, config.engine)
    check_options(config.engine_options, option_names(options), f"engine {config.engine!r}")
    return Routes.single(_make(config.engine, factory, options, config), config.engine)


def _models(config: Config) -> Routes:
    names = [model.name for model in config.models]
    if len(set(names)) != len(names):
        raise EngineLoadError(f"model names must be unique: {', '.join(names)}")
    factories = {m.engine: load_engine(m.engine) for m in config.models}
    declared = {spec: declared_options(f, spec) for spec, f in factories.items()}
    for m in config.models:
        where = f"model {m.name!r}: engine {m.engine!r}"
        check_options(m.options, option_names(declared[m.engine]), where)
    # A top-level option goes to each engine that takes it: one at least must.
    takes = frozenset().union(*map(option_names, declared.values()))
    check_options(config.engine_options, takes, "engine options")
    return Routes(
        {
            m.name: Route(
                _make(
                    m.engine,
                    factories[m.engine],
                    declared[m.engine],
                    config.for_model(m),
                    f"model {m.name!r}: ",
                ),
                m.engine,
                m.name,
            )
            for m in config.models
        }
    )


def as_engine(obj: Engine | RelayEngine | StreamEngine) -> RelayEngine:
    """``obj`` in the one call shape the session uses, ``relay``: as it is, or adapted
    if it has only ``answer`` or only ``generate``.

    Raises:
        EngineLoadError: ``obj`` has none of ``relay``, ``answer`` and ``generate``.
    """
    if callable(getattr(obj, "relay", None)):
        return cast(RelayEngine, obj)
    if callable(getattr(obj, "answer", None)):
        return AnswerRelay(cast(Engine, obj))
    if callable(getattr(obj, "generate", None)):
        return AnswerRelay(StreamAdapter(cast(StreamEngine, obj)))
    raise EngineLoadError(f"{type(obj).__name__} has neither answer() nor generate()")


def _make(
    spec: str,
    factory: EngineFactory,
    options: type[msgspec.Struct] | None,
    config: Config,
    where: str = "",
) -> RelayEngine:
    """The engine ``factory`` builds: called with its ``options`` if it declares some."""
    try:
        if options is None:
            return as_engine(factory(config))
        given = read_options(options, config, f"{where}engine {spec!r}")
        return as_engine(cast(OptionsFactory, factory)(config, given))
    except ValueError as exc:
        raise EngineLoadError(f"engine {spec!r}: {exc}") from None


def available_engines() -> list[str]:
    """Built-in engine names, then those installed packages register."""
    installed = sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    return list(BUILTIN_ENGINES) + [name for name in installed if name not in BUILTIN_ENGINES]


def _entry_point(name: str) -> str | None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        return str(ep.value)
    return None
