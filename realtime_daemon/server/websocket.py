"""The handler of the WebSocket paths: check the upgrade, then serve the connection.

:func:`~.upgrade.check_upgrade` decides; this module answers a refusal
(counted and logged, never with the token), or prepares the WebSocket and
hands it to a :class:`~realtime_daemon.transport.connection.Connection`: a new
session (:class:`~realtime_daemon.session.host.Host`) in the dialect chosen, or a
held session resumed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import structlog
from aiohttp import web

from realtime_daemon.config import Config
from realtime_daemon.dialects.registry import Upgrade
from realtime_daemon.server.admission import PROTOCOL, TrustedProxies, client_address
from realtime_daemon.server.keys import Key
from realtime_daemon.server.metrics import Metrics
from realtime_daemon.server.quotas import KeyEars, KeyGrant
from realtime_daemon.server.state import State
from realtime_daemon.server.upgrade import Accept, Refused, check_upgrade
from realtime_daemon.session.host import Host
from realtime_daemon.session.resume import Held
from realtime_daemon.transport.closes import CLOSE_TIMEOUT
from realtime_daemon.transport.connection import Connection
from realtime_daemon.transport.reader import Limits
from realtime_daemon.wire.http import Refusal

__all__ = ["open_websocket", "websocket_handler"]

logger = structlog.get_logger("realtime_daemon")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def open_websocket(
    config: Config, subprotocols: Sequence[str]
) -> web.WebSocketResponse[Literal[False]]:
    """The WebSocket of an accepted upgrade, not yet prepared."""
    return web.WebSocketResponse(
        protocols=subprotocols,
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


def websocket_handler(state: State, path: str) -> Handler:
    """The aiohttp handler of the WebSocket path ``path`` (told, not read from the
    request: an idle connection keeps what its request was asked)."""
    return _Path(state, path).handle


class _Path:
    """One WebSocket path's handler and what it serves with."""

    def __init__(self, state: State, path: str) -> None:
        config = state.config
        self.state, self.path = state, path
        self.proxies = TrustedProxies(config.forwarded_allow_ips)
        self.limits = Limits(
            rate=config.max_requests_per_second,
            idle_timeout=config.idle_timeout,
            send_timeout=config.send_timeout,
            max_concurrent_requests=config.max_concurrent_requests,
            max_message_size=config.max_message_size,
        )
        # The daemon's own (beside a browser's token), then the dialects' own.
        offered = (PROTOCOL, *(p for d in state.dialects for p in d.subprotocols))
        self.subprotocols = tuple(dict.fromkeys(offered))
        self.offer = state.resumes if state.resumes.unavailable is None else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Refuse the upgrade, or serve the connection until it closes."""
        verdict = check_upgrade(
            self.path,
            request.headers,
            request.query,
            config=self.state.config,
            dialects=self.state.dialects,
            models=self.state.routes.models,
            admission=self.state.admission,
            open_connections=len(self.state.connections),
            draining=self.state.connections.draining,
            resumes=self.state.resumes,
            shared=self.state.shared,
            hearing=self.state.hearing,
            voice=self.state.voice,
        )
        forwarded = request.headers.get("X-Forwarded-For")
        peer = client_address(request.remote, forwarded, self.proxies)
        if isinstance(verdict, Refused):
            return _refuse(verdict, request, peer, self.state.metrics)
        ws = open_websocket(self.state.config, self.subprotocols)
        if verdict.resume is not None:
            await self._resumed(ws, request, verdict.resume)
            return ws
        key, session_id = verdict.caller.key, uuid.uuid4().hex
        if key is not None and not await self.state.quotas.open_session(key, session_id):
            self.state.metrics.key_refused.labels(key.name, "too_many_sessions").inc()
            refusal = Refusal(
                429,
                f"key {key.name!r} has its {key.max_sessions} sessions open, retry later",
                "too_many_sessions",
                {"Retry-After": "1"},
            )
            return _refuse(Refused("admission", refusal), request, peer, self.state.metrics)
        connection = Connection(ws, request.transport, request.protocol, self.limits)
        host = self._host(connection, verdict, peer, session_id)
        del verdict  # an idle connection waits in this frame: keep only what it uses
        # Counted before the 101 goes out, so that /health and the drain never
        # miss a connection the client already sees open. Served here, not in
        # a coroutine of its own: an idle connection waits in this frame.
        started = asyncio.get_running_loop().time()
        self.state.connections.add(host)
        if key is not None:
            self.state.key_sessions.add(key.name, host)
        try:
            await ws.prepare(request)
            logger.debug("connection_opened", conn=host.session_id, peer=peer)
            close = await connection.serve(host)
        finally:
            self.state.connections.discard(host)
            if key is not None:
                self._ended(key, host)
        self.state.metrics.closes.labels(str(close.code)).inc()
        host.log.info(
            "connection_closed",
            code=int(close.code),
            reason=close.reason,
            requests=host.channel.received,
            chunks=host.outbox.count,
            duration_s=round(asyncio.get_running_loop().time() - started, 3),
        )
        return ws

    def _ended(self, key: Key, host: Host) -> None:
        """A key's session ended: its slot is free."""
        self.state.key_sessions.discard(key.name, host)
        self.state.quotas.close_session(key, host.session_id)

    def _keyed(self, upgrade: Upgrade, grant: KeyGrant) -> Upgrade:
        """The session's upgrade with its key's grant, its audio in and out counted for
        its key too."""
        hearing, voice = upgrade.hearing, upgrade.voice
        model = upgrade.query.get("model") or (upgrade.session or {}).get("model") or "other"
        counts = KeyEars(self.state.metrics, self.state.metrics, grant.key, str(model))
        if hearing is not None:
            hearing = dataclasses.replace(hearing, observer=counts)
        if voice is not None:
            voice = dataclasses.replace(voice, observer=counts)
        return dataclasses.replace(upgrade, grant=grant, hearing=hearing, voice=voice)

    def _host(self, connection: Connection, verdict: Accept, peer: str, session_id: str) -> Host:
        """A new session on ``connection``, in the dialect the upgrade chose."""
        assert verdict.dialect is not None
        key, upgrade = verdict.caller.key, verdict.upgrade
        grant = self.state.quotas.grant(key, session_id) if key is not None else None
        if grant is not None:
            upgrade = self._keyed(upgrade, grant)
        return Host(
            connection,
            self.state.routes,
            verdict.dialect.build(upgrade),
            queue_size=self.state.config.request_queue_size,
            session_id=session_id,
            peer=peer,
            observer=self.state.metrics,
            send_timeout=self.limits.send_timeout,
            resumes=self.offer,
            identity=verdict.identity,
            grant=grant,
            max_duration=self.state.config.max_session_duration,
        )

    async def _resumed(
        self,
        ws: web.WebSocketResponse[Literal[False]],
        request: web.Request,
        resume: tuple[Held, int],
    ) -> None:
        """Serve a held session on ``ws`` until this connection ends."""
        session, after = resume
        assert isinstance(session, Host)
        await ws.prepare(request)
        connection = Connection(ws, request.transport, request.protocol, self.limits)
        close = await connection.resume(session, after)
        self.state.metrics.closes.labels(str(close.code)).inc()
        session.log.info(
            "connection_closed", code=int(close.code), reason=close.reason, resumed=True
        )


def _refuse(verdict: Refused, request: web.Request, peer: str, metrics: Metrics) -> web.Response:
    """The answer to a refused upgrade, counted and logged (never the Authorization
    header: a refused token is still a secret)."""
    refusal = verdict.refusal
    if verdict.kind == "admission":
        metrics.refused.labels(refusal.code).inc()
        logger.info(
            "upgrade_refused",
            status=refusal.status,
            reason=refusal.code,
            peer=peer,
            origin=request.headers.get("Origin"),
        )
    elif verdict.kind == "resume":
        metrics.resume_refused.labels(refusal.code).inc()
        logger.info("resume_refused", status=refusal.status, reason=refusal.code, peer=peer)
    answer = web.Response(
        status=refusal.status, headers=refusal.headers, text=refusal.reason + "\n"
    )
    if verdict.close:
        answer.force_close()
    return answer
