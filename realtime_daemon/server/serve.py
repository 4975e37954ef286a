"""Run the daemon: bind, log ``server_ready``, wait for a signal, drain, exit."""

from __future__ import annotations

import asyncio
import socket

import structlog
from aiohttp import web

from realtime_daemon.config import Config
from realtime_daemon.engines.routes import Routes
from realtime_daemon.server.app import STATE, build_app
from realtime_daemon.server.connections import Connections
from realtime_daemon.server.metrics import configure_process
from realtime_daemon.server.roles import STANDALONE, Role
from realtime_daemon.server.signals import catch_signals, reload_keys_on_sighup
from realtime_daemon.server.sockets import (
    address_fields,
    address_text,
    bind_sockets,
    tls_context,
)
from realtime_daemon.server.systemd import Notifier, watchdog_interval
from realtime_daemon.transport.closes import CLOSE_TIMEOUT

__all__ = ["ForcedStop", "make_runner", "run", "serve"]

logger = structlog.get_logger("realtime_daemon")

STATUS_INTERVAL = 5.0
"""Seconds between STATUS= updates when systemd asks for no watchdog."""


class ForcedStop(Exception):
    """A second signal stopped the daemon before its drain finished."""


def run(config: Config, engine: Routes | None = None, role: Role = STANDALONE) -> None:
    """Serve until SIGINT or SIGTERM, then drain and return (see :func:`serve`).

    Raises:
        BindError: the address cannot be bound.
        ForcedStop: a second signal cut the drain short.
    """
    loop_factory = None
    if config.loop == "uvloop":
        import uvloop  # the optional "fast" extra

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(config, engine, role))
    except asyncio.CancelledError:
        raise ForcedStop("stopped by a second signal before the drain finished") from None


async def serve(config: Config, engine: Routes | None = None, role: Role = STANDALONE) -> None:
    """Serve ``config`` until SIGINT or SIGTERM; a second signal stops at once.

    Under systemd it serves the sockets passed by socket activation, if any,
    and reports READY=1, STATUS=, STOPPING=1 and WATCHDOG=1 (see systemd.py).
    As a :class:`~.roles.Worker` it serves its supervisor's sockets and
    reports to it.
    """
    # Signals first: once READY=1 or server_ready is out, a SIGTERM must drain.
    stop = catch_signals(force=role.forced_by_second_signal)
    configure_process(role.metrics_dir)
    notifier = role.notifier()
    inherited = role.sockets()
    app = build_app(config, engine, role.metrics_dir)
    state = app[STATE]
    reload_keys_on_sighup(state.admission, state.key_sessions)
    role.started(stop)
    runner = make_runner(app, config)
    await runner.setup()
    heartbeat: asyncio.Task[None] | None = None
    try:
        where = await _start_sites(runner, config, inherited)
        role.announce(config, state, where, bool(inherited))
        listening = ", ".join(address_text(a) + config.path for a in runner.addresses)
        if notifier.enabled:
            notifier.send("READY=1", f"STATUS={_status(state.connections, listening)}")
            heartbeat = asyncio.create_task(
                _heartbeat(notifier, state.connections, listening, role.counts_connections)
            )
        await stop.wait()
        logger.info(
            "shutdown_started",
            connections=len(state.connections),
            timeout_s=config.shutdown_timeout,
        )
        notifier.send("STOPPING=1", f"STATUS={_status(state.connections, listening, True)}")
        # Stop listening, then drain while aiohttp still reads the sockets:
        # its cleanup (below) first closes every connection's handler, after
        # which frames are dropped (pongs, the client's Close, requests).
        for site in list(runner.sites):
            await site.stop()
        await state.connections.drain(config.shutdown_timeout)
    finally:
        # Drains what is left (app.on_shutdown), then closes; the heartbeat
        # keeps the watchdog fed until the drain is over. A second signal
        # (this task cancelled) stops at once, without waiting for answers.
        task = asyncio.current_task()
        if task is None or not task.cancelling():
            await runner.cleanup()
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.wait((heartbeat,))
        notifier.close()
    logger.info("server_stopped")


async def _start_sites(
    runner: web.AppRunner, config: Config, inherited: list[socket.socket]
) -> dict[str, object]:
    """Serve the inherited sockets, or bind them (:func:`bind_sockets`); say where for the log."""
    ssl_context = tls_context(config)
    for sock in inherited or bind_sockets(config):
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    return address_fields(runner.addresses[0])


async def _heartbeat(
    notifier: Notifier, connections: Connections, listening: str, count: bool = False
) -> None:
    """From the event loop itself: WATCHDOG=1 when asked for, STATUS= when it changes.

    A loop that is stuck stops feeding the watchdog, and systemd restarts it.
    With ``count`` (a worker reporting to its supervisor) a STATUS= comes with
    ``CONNECTIONS=<n>``, which the supervisor adds up for its own STATUS=.
    """
    interval = watchdog_interval()
    watchdog = interval is not None
    last_status = ""
    while True:
        status = _status(connections, listening)
        fields = ["WATCHDOG=1"] if watchdog else []
        if status != last_status:
            fields.append(f"STATUS={status}")
            if count:
                fields.append(f"CONNECTIONS={len(connections)}")
            last_status = status
        if fields:
            notifier.send(*fields)
        await asyncio.sleep(interval if interval is not None else STATUS_INTERVAL)


def _status(connections: Connections, listening: str, draining: bool = False) -> str:
    """The STATUS= line ``systemctl status`` shows."""
    if draining or connections.draining:
        return f"draining {len(connections)} connections"
    return f"serving {listening}, {len(connections)} connections"


def make_runner(app: web.Application, config: Config) -> web.AppRunner:
    """The runner the daemon serves ``app`` with; tests start theirs the same way."""
    # The drain (app.on_shutdown) bounds every connection; the runner's own
    # timeout only has to cover handlers that are already closing. aiohttp
    # closes a connection that has not sent a whole request within its
    # keep-alive timeout, partial headers included: the handshake timeout.
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=CLOSE_TIMEOUT,
        keepalive_timeout=config.handshake_timeout,
    )
