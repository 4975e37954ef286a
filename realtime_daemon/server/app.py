"""The aiohttp application: the WebSocket paths, ``/health``, ``/live``, ``/metrics``, models.

Each dialect of the registry is served at its path by the handler of
:mod:`.websocket`; the app holds the state every handler shares.
"""

from __future__ import annotations

import os
import resource
import uuid
from collections.abc import Sequence

import structlog
from aiohttp import web

from realtime_daemon.config import ENDPOINTS, Config
from realtime_daemon.dialects.realtime import Hearing, Voice
from realtime_daemon.dialects.registry import DIALECTS, DialectSpec
from realtime_daemon.engines.base import Engine, RelayEngine, StreamEngine
from realtime_daemon.engines.load import as_engine, build_routes
from realtime_daemon.engines.routes import Routes
from realtime_daemon.engines.speech.load import load_synthesizer, load_transcriber
from realtime_daemon.server.admission import Admission
from realtime_daemon.server.client_secrets import Signer, read_secret_key
from realtime_daemon.server.connections import Connections, KeySessions
from realtime_daemon.server.keys import Keyring
from realtime_daemon.server.metrics import CONTENT_TYPE, Metrics
from realtime_daemon.server.mint import CLIENT_SECRETS, SESSIONS, client_secrets, unauthorized
from realtime_daemon.server.quotas import Quotas
from realtime_daemon.server.redis_counters import RedisCounters
from realtime_daemon.server.state import STATE, State
from realtime_daemon.server.websocket import websocket_handler
from realtime_daemon.session.resume import Resumes

__all__ = ["STATE", "State", "build_app"]

logger = structlog.get_logger("realtime_daemon")


def build_app(
    config: Config,
    engine: Routes | Engine | RelayEngine | StreamEngine | None = None,
    metrics_dir: str | None = None,
    dialects: Sequence[DialectSpec] = DIALECTS,
) -> web.Application:
    """Build the daemon's application.

    Args:
        config: the daemon's settings.
        engine: the routes to serve, or one engine for every model (named
            ``config.engine`` in metrics); by default the routes
            ``config.engine`` and ``config.models`` make.
        metrics_dir: a worker's shared metrics directory (see :class:`Metrics`).
        dialects: the dialects to speak, each at its path (the registry's by default).

    Raises:
        EngineLoadError: ``config.engine`` or a model's engine cannot be built.
        KeyFileError: ``config.keys_file`` or ``config.auth_token_file`` cannot be used.
        SecretKeyError: ``config.secret_key_file`` cannot be used.
        SpeechLoadError: ``config.stt`` cannot be built.
    """
    if engine is None:
        routes = build_routes(config)
    elif isinstance(engine, Routes):
        routes = engine
    else:
        routes = Routes.single(as_engine(engine), config.engine)
    metrics = Metrics(routes.labels(), metrics_dir, [spec.name for spec in dialects])
    connections = Connections(metrics)
    keyring = None
    if config.keys_file or config.auth_token_file:
        keyring = Keyring(config.keys_file, config.auth_token_file)
    signer = Signer(read_secret_key(config.secret_key_file)) if config.secret_key_file else None
    admission = Admission(
        keyring,
        config.allowed_origin,
        config.max_connections or default_max_connections(),
        signer,
    )
    counters = None
    if config.redis_url and keyring is not None:
        counters = RedisCounters(
            config.redis_url, metrics, config.instance_name or uuid.uuid4().hex
        )
    unavailable = "resume needs --workers 1" if config.workers > 1 else None
    resumes = Resumes(
        config.resume_window, config.resume_buffer, unavailable, config.instance_name, dialects
    )
    shared = {spec.name: spec.shared(config) for spec in dialects if spec.shared is not None}
    state = State(
        config=config,
        routes=routes,
        connections=connections,
        metrics=metrics,
        admission=admission,
        resumes=resumes,
        dialects=dialects,
        quotas=Quotas(metrics, counters),
        key_sessions=KeySessions(),
        hearing=_hearing(config, metrics),
        shared=shared,
        voice=_voice(config, metrics),
    )
    app = web.Application()
    app[STATE] = state
    for path in dict.fromkeys(spec.path(config) for spec in dialects):
        app.router.add_get(path, websocket_handler(state, path))
    app.router.add_get(ENDPOINTS.health, _health)
    app.router.add_get(ENDPOINTS.live, _live)
    app.router.add_get(ENDPOINTS.metrics, _metrics)
    app.router.add_get(ENDPOINTS.models, _models)
    app.router.add_post(CLIENT_SECRETS, client_secrets(beta=False))
    app.router.add_post(SESSIONS, client_secrets(beta=True))
    app.on_shutdown.append(_drain)
    app.on_cleanup.append(_close_engine)
    app.on_cleanup.append(_close_shared)
    if counters is not None:
        app.on_startup.append(_start_counters)
        app.on_cleanup.append(_close_counters)
    return app


def _hearing(config: Config, metrics: Metrics) -> Hearing | None:
    transcriber = load_transcriber(config)
    if transcriber is None:
        return None
    passthrough = frozenset(m.name for m in config.models if m.audio_input == "passthrough")
    return Hearing(transcriber, config.max_input_audio_seconds, metrics, passthrough)


def _voice(config: Config, metrics: Metrics) -> Voice | None:
    synthesizer = load_synthesizer(config)
    if synthesizer is None:
        return None
    return Voice(
        synthesizer, config.tts_voices, config.tts_max_concurrent, config.tts_model, metrics
    )


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
        "routes": state.routes.table(),
        "connections": len(state.connections),
        "pid": os.getpid(),
    }
    return web.json_response(body, status=503 if draining else 200)


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.metrics.resume_buffer.set(state.resumes.buffered())
    for name, shared in state.shared.items():
        state.metrics.shared_up.labels(name).set(1 if shared.up else 0)
    body = state.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _models(request: web.Request) -> web.Response:
    """OpenAI's model list: the configured ``[[models]]`` (none without routing)
    that the caller's key may use.

    With keys, as OpenAI's, it needs one: the model names are the operator's.
    """
    state = request.app[STATE]
    caller = state.admission.identify(request.headers, secrets=False)
    if caller is None:
        return unauthorized()
    key = caller.key
    data = [
        {"id": m.name, "object": "model", "created": 0, "owned_by": "realtime-daemon"}
        for m in state.config.models
        if key is None or key.allows(m.name)
    ]
    return web.json_response({"object": "list", "data": data})


async def _start_counters(app: web.Application) -> None:
    shared = app[STATE].quotas.shared
    assert isinstance(shared, RedisCounters)
    shared.start()


async def _close_counters(app: web.Application) -> None:
    shared = app[STATE].quotas.shared
    assert isinstance(shared, RedisCounters)
    await shared.close()


async def _close_engine(app: web.Application) -> None:
    state = app[STATE]
    await state.routes.aclose()
    if state.hearing is not None:
        await state.hearing.transcriber.aclose()
    if state.voice is not None:
        await state.voice.synthesizer.aclose()


async def _close_shared(app: web.Application) -> None:
    for shared in app[STATE].shared.values():
        await shared.aclose()


async def _drain(app: web.Application) -> None:
    state = app[STATE]
    await state.connections.drain(state.config.shutdown_timeout)
