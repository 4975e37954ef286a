"""The aiohttp application: the WebSocket path, ``/health``, ``/live`` and ``/metrics``."""

from __future__ import annotations

import dataclasses
import os
import resource

from aiohttp import web

from .admission import Admission, Tokens
from .config import Config
from .connections import Connections
from .engines.base import Engine, aclose
from .engines.load import build_engine
from .handler import websocket_handler
from .metrics import CONTENT_TYPE, Metrics

__all__ = ["STATE", "State", "build_app"]


@dataclasses.dataclass(frozen=True)
class State:
    """What the app's handlers share: settings, engine, open connections, metrics."""

    config: Config
    engine: Engine
    connections: Connections
    metrics: Metrics
    admission: Admission


STATE = web.AppKey("state", State)


def build_app(
    config: Config, engine: Engine | None = None, metrics_dir: str | None = None
) -> web.Application:
    """Build the daemon's application.

    Args:
        config: the daemon's settings.
        engine: the engine to serve; by default the one ``config.engine`` names.
        metrics_dir: a worker's shared metrics directory (see :class:`Metrics`).

    Raises:
        EngineLoadError: ``config.engine`` or a model's engine cannot be built.
        TokenFileError: ``config.auth_token_file`` cannot be used.
    """
    if engine is None:
        engine = build_engine(config)
    metrics = Metrics(config.engine, metrics_dir)
    connections = Connections(metrics)
    tokens = Tokens(config.auth_token_file) if config.auth_token_file else None
    admission = Admission(
        tokens, config.allowed_origin, config.max_connections or default_max_connections()
    )
    state = State(
        config=config,
        engine=engine,
        connections=connections,
        metrics=metrics,
        admission=admission,
    )
    app = web.Application()
    app[STATE] = state
    handler = websocket_handler(config, engine, connections, metrics, admission)
    app.router.add_get(config.path, handler)
    app.router.add_get("/health", _health)
    app.router.add_get("/live", _live)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/v1/models", _models)
    app.on_shutdown.append(_drain)
    app.on_cleanup.append(_close_engine)
    return app


def default_max_connections() -> int:
    """What the open-file limit allows, less 64 descriptors for everything else."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 65536
    return max(soft - 64, 1)


async def _health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    draining = state.connections.draining
    body = {
        "status": "draining" if draining else "ok",
        "engine": state.config.engine,
        "connections": len(state.connections),
        "pid": os.getpid(),
    }
    return web.json_response(body, status=503 if draining else 200)


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[STATE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _models(request: web.Request) -> web.Response:
    """OpenAI's model list: the configured ``[[models]]`` (none without routing)."""
    models = request.app[STATE].config.models
    data = [
        {"id": m.name, "object": "model", "created": 0, "owned_by": "realtime-daemon"}
        for m in models
    ]
    return web.json_response({"object": "list", "data": data})


async def _close_engine(app: web.Application) -> None:
    await aclose(app[STATE].engine)


async def _drain(app: web.Application) -> None:
    state = app[STATE]
    await state.connections.drain(state.config.shutdown_timeout)
