"""The aiohttp application: the WebSocket path, ``/health``, ``/live`` and ``/metrics``.

The WebSocket path's handler answers plain requests (426), admits or refuses
the upgrade, and then hands the connection to :class:`~.handler.Connection`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

import structlog
from aiohttp import web

from realtime_daemon.config import Config
from realtime_daemon.dialects import Resumable
from realtime_daemon.dialects.chat import ChatDialect
from realtime_daemon.dialects.choice import choose_protocol
from realtime_daemon.dialects.realtime import BETA, GA, RealtimeDialect
from realtime_daemon.engines.base import Engine, StreamEngine
from realtime_daemon.engines.load import as_engine, build_routes
from realtime_daemon.engines.routes import Routes
from realtime_daemon.server.admission import (
    PROTOCOL,
    REALTIME_PROTOCOL,
    Admission,
    Refusal,
    Tokens,
    TrustedProxies,
    client_address,
    presented_token,
)
from realtime_daemon.server.connections import Connections
from realtime_daemon.server.metrics import CONTENT_TYPE, Metrics
from realtime_daemon.session.outbox import Outbox
from realtime_daemon.session.resume import Resumes, identity_of
from realtime_daemon.transport.closes import CLOSE_TIMEOUT
from realtime_daemon.transport.connection import Connection, DialectFactory
from realtime_daemon.transport.reader import Limits

__all__ = ["STATE", "State", "build_app", "websocket_handler"]

logger = structlog.get_logger("realtime_daemon")


@dataclasses.dataclass(frozen=True)
class State:
    """What the app's handlers share: settings, routes, open connections, metrics."""

    config: Config
    routes: Routes
    connections: Connections
    metrics: Metrics
    admission: Admission
    resumes: Resumes


STATE = web.AppKey("state", State)


def build_app(
    config: Config,
    engine: Routes | Engine | StreamEngine | None = None,
    metrics_dir: str | None = None,
) -> web.Application:
    """Build the daemon's application.

    Args:
        config: the daemon's settings.
        engine: the routes to serve, or one engine for every model (named
            ``config.engine`` in metrics); by default the routes
            ``config.engine`` and ``config.models`` make.
        metrics_dir: a worker's shared metrics directory (see :class:`Metrics`).

    Raises:
        EngineLoadError: ``config.engine`` or a model's engine cannot be built.
        TokenFileError: ``config.auth_token_file`` cannot be used.
    """
    if engine is None:
        routes = build_routes(config)
    elif isinstance(engine, Routes):
        routes = engine
    else:
        routes = Routes.single(as_engine(engine), config.engine)
    metrics = Metrics(routes.labels(), metrics_dir)
    connections = Connections(metrics)
    tokens = Tokens(config.auth_token_file) if config.auth_token_file else None
    admission = Admission(
        tokens, config.allowed_origin, config.max_connections or default_max_connections()
    )
    unavailable = "resume needs --workers 1" if config.workers > 1 else None
    resumes = Resumes(config.resume_window, config.resume_buffer, unavailable, config.instance_name)
    state = State(
        config=config,
        routes=routes,
        connections=connections,
        metrics=metrics,
        admission=admission,
        resumes=resumes,
    )
    app = web.Application()
    app[STATE] = state
    handler = websocket_handler(config, routes, connections, metrics, admission, resumes)
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
    body = state.metrics.render()
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
    await app[STATE].routes.aclose()


async def _drain(app: web.Application) -> None:
    state = app[STATE]
    await state.connections.drain(state.config.shutdown_timeout)


UPGRADE_REQUIRED = (
    "This is a WebSocket endpoint: connect with a WebSocket client, "
    "for example `websocat ws://HOST:PORT{path}`.\n"
)


def websocket_handler(
    config: Config,
    routes: Routes,
    connections: Connections,
    metrics: Metrics,
    admission: Admission,
    resumes: Resumes,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of the WebSocket path."""
    proxies = TrustedProxies(config.forwarded_allow_ips)
    limits = Limits(
        rate=config.max_requests_per_second,
        idle_timeout=config.idle_timeout,
        send_timeout=config.send_timeout,
        max_concurrent_requests=config.max_concurrent_requests,
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Sec-WebSocket-Version", "13") != "13":
            # RFC 6455 4.4: the versions the server speaks, with a 426.
            refused = web.Response(
                status=426,
                headers={"Sec-WebSocket-Version": "13"},
                text="WebSocket version 13 only\n",
            )
            refused.force_close()  # a client speaking another version has no use for it
            return refused
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(
                status=426,
                headers={"Upgrade": "websocket"},
                text=UPGRADE_REQUIRED.format(path=config.path),
            )
        peer = client_address(request.remote, request.headers.get("X-Forwarded-For"), proxies)
        refusal = admission.check(request.headers, len(connections), connections.draining)
        if refusal is not None:
            metrics.refused.labels(refusal.code).inc()
            # Never the Authorization header: a refused token is still a secret.
            logger.info(
                "upgrade_refused",
                status=refusal.status,
                reason=refusal.code,
                peer=peer,
                origin=request.headers.get("Origin"),
            )
            return web.Response(
                status=refusal.status, headers=refusal.headers, text=refusal.reason + "\n"
            )
        identity = identity_of(presented_token(request.headers)) if admission.tokens else None
        token = request.query.get("resume")
        if token is not None:
            held = resumes.check(token, request.query.get("after"), identity)
            if isinstance(held, Refusal):
                metrics.resume_refused.labels(held.code).inc()
                logger.info("resume_refused", status=held.status, reason=held.code, peer=peer)
                return web.Response(status=held.status, text=held.reason + "\n")
        ws: web.WebSocketResponse[Literal[False]] = web.WebSocketResponse(
            protocols=(PROTOCOL, REALTIME_PROTOCOL),
            heartbeat=config.heartbeat or None,
            # aiohttp refuses a message of exactly max_msg_size bytes; ours is
            # the largest accepted. No permessage-deflate: streamed chunks are
            # tiny, and its decompressed size is counted differently.
            max_msg_size=config.max_message_size + 1,
            compress=False,
            autoclose=False,
            decode_text=False,
            timeout=CLOSE_TIMEOUT,
        )
        if token is not None:
            assert not isinstance(held, Refusal)
            session, after = held
            assert isinstance(session, Connection)
            await ws.prepare(request)
            return await _resumed(ws, session, request, after, metrics)
        session_id = uuid.uuid4().hex
        connection = Connection(
            ws,
            routes,
            dialect_for(config, routes, request),
            queue_size=config.request_queue_size,
            session_id=session_id,
            peer=peer,
            metrics=metrics,
            limits=limits,
            transport=request.transport,
            protocol=request.protocol,
            resumes=resumes if resumes.unavailable is None else None,
            identity=identity,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Counted before the 101 goes out, so that /health and the drain never
        # miss a connection the client already sees open.
        connections.add(connection)
        try:
            await ws.prepare(request)
            logger.debug("connection_opened", conn=session_id, peer=peer)
            close = await connection.run()
        finally:
            connections.discard(connection)
        metrics.closes.labels(str(close.code)).inc()
        connection.log.info(
            "connection_closed",
            code=int(close.code),
            reason=close.reason,
            requests=connection.channel.received,
            chunks=connection.outbox.count,
            duration_s=round(loop.time() - started, 3),
        )
        return ws

    return handle


async def _resumed(
    ws: web.WebSocketResponse[Literal[False]],
    session: Connection,
    request: web.Request,
    after: int,
    metrics: Metrics,
) -> web.WebSocketResponse[Literal[False]]:
    """Serve a held session on the prepared ``ws`` until this connection ends."""
    close = await session.resume(ws, request.transport, request.protocol, after)
    metrics.closes.labels(str(close.code)).inc()
    session.log.info("connection_closed", code=int(close.code), reason=close.reason, resumed=True)
    return ws


def dialect_for(config: Config, routes: Routes, request: web.Request) -> DialectFactory:
    """The dialect an upgrade asks for (see :func:`~.dialects.choice.choose_protocol`)."""
    protocol = choose_protocol(config.protocol, request.query, request.headers)
    limit = config.max_concurrent_requests
    if protocol == "chat":

        def chat(outbox: Outbox, session_id: str, resume: Resumable | None) -> ChatDialect:
            return ChatDialect(outbox, session_id, routes.models, limit, resume)

        return chat
    names = BETA if protocol == "openai-realtime-beta" else GA
    model = request.query.get("model") or None

    def realtime(outbox: Outbox, session_id: str, resume: Resumable | None) -> RealtimeDialect:
        return RealtimeDialect(
            outbox,
            session_id,
            names=names,
            model=model,
            models=routes.models,
            concurrency_limit=limit,
            max_items=config.max_conversation_items,
            max_bytes=config.max_conversation_bytes,
            resume=resume,
        )

    return realtime
