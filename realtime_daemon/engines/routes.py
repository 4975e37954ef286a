"""Which engine answers a request: one engine for every model, or one per ``[[models]]``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from realtime_daemon.engines.base import RelayEngine, aclose

__all__ = ["OTHER_MODEL", "Route", "Routes"]

OTHER_MODEL = "other"
"""The ``model`` label of requests for a model that is not configured."""


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """An engine, the name it was configured by, and the model label of its requests."""

    engine: RelayEngine
    engine_name: str
    model_label: str = OTHER_MODEL


class Routes:
    """The routing table: model name to route, or one route for any model.

    Args:
        routes: route by model name; empty when ``default`` takes every model.
        default: the route of every model, without ``[[models]]``.
    """

    def __init__(self, routes: Mapping[str, Route], default: Route | None = None) -> None:
        if not routes and default is None:
            raise ValueError("no engine to route to")
        self._routes = dict(routes)
        self._default = default

    @classmethod
    def single(cls, engine: RelayEngine, engine_name: str) -> Routes:
        """One engine for every model."""
        return cls({}, Route(engine, engine_name))

    def route(self, model: str) -> Route | None:
        """The route of ``model``; None when no engine serves it."""
        route = self._routes.get(model)
        return route if route is not None else self._default

    @property
    def models(self) -> list[str] | None:
        """The configured model names, sorted; None when any model is taken."""
        return None if self._default is not None else sorted(self._routes)

    def table(self) -> dict[str, str]:
        """Engine name by model, ``"*"`` standing for any model (for /health and the log)."""
        table = {model: route.engine_name for model, route in self._routes.items()}
        if self._default is not None:
            table["*"] = self._default.engine_name
        return table

    def labels(self) -> list[tuple[str, str]]:
        """The (engine, model) metric labels of every route."""
        routes = list(self._routes.values())
        if self._default is not None:
            routes.append(self._default)
        return [(route.engine_name, route.model_label) for route in routes]

    async def aclose(self) -> None:
        """Close the engines that hold resources, each once."""
        engines = {id(r.engine): r.engine for r in self._routes.values()}
        if self._default is not None:
            engines[id(self._default.engine)] = self._default.engine
        for engine in engines.values():
            await aclose(engine)
