"""Run the daemon: bind, log ``server_ready``, wait for a signal, drain, exit."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import ssl
import stat
from typing import Any

import structlog
from aiohttp import web

from realtime_daemon.config import Config
from realtime_daemon.engines.routes import Routes
from realtime_daemon.server.admission import Admission, TokenFileError
from realtime_daemon.server.app import STATE, build_app
from realtime_daemon.server.connections import Connections
from realtime_daemon.server.metrics import configure_process
from realtime_daemon.server.systemd import Notifier, listen_sockets, watchdog_interval
from realtime_daemon.transport.closes import CLOSE_TIMEOUT

__all__ = [
    "BindError",
    "ForcedStop",
    "Worker",
    "address_fields",
    "address_text",
    "bind_error",
    "bind_sockets",
    "format_address",
    "make_runner",
    "run",
    "serve",
]

logger = structlog.get_logger("realtime_daemon")

BACKLOG = 128  # as aiohttp's sites
STATUS_INTERVAL = 5.0
"""Seconds between STATUS= updates when systemd asks for no watchdog."""


class BindError(Exception):
    """The daemon cannot listen where it was told; the message names host and port."""


class ForcedStop(Exception):
    """A second signal stopped the daemon before its drain finished."""


@dataclasses.dataclass(frozen=True)
class Worker:
    """What a worker of ``--workers`` serves with, from its supervisor (workers.py).

    Attributes:
        index: the worker's number, 1 to N, in its log lines.
        sockets: the supervisor's listening sockets, served instead of binding.
        metrics_dir: the directory all workers keep their metrics in.
        report: a connected datagram socket to the supervisor, which gets the
            notifications (READY=1, WATCHDOG=1, ...) systemd would, each with
            a ``WORKER=<pid>`` field.
        lifeline: the read end of a pipe only the supervisor writes to: it
            reads end-of-file when the supervisor is gone, and the worker
            drains as on SIGTERM rather than serve on unsupervised.
    """

    index: int
    sockets: list[socket.socket]
    metrics_dir: str
    report: socket.socket
    lifeline: int


def run(config: Config, engine: Routes | None = None, worker: Worker | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then drain and return.

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
            runner.run(serve(config, engine, worker))
    except asyncio.CancelledError:
        raise ForcedStop("stopped by a second signal before the drain finished") from None


async def serve(config: Config, engine: Routes | None = None, worker: Worker | None = None) -> None:
    """Serve ``config`` until SIGINT or SIGTERM; a second signal stops at once.

    Under systemd it serves the sockets passed by socket activation, if any,
    and reports READY=1, STATUS=, STOPPING=1 and WATCHDOG=1 (see systemd.py).
    As a ``worker`` it serves its supervisor's sockets and reports to it.
    """
    # Signals first: once READY=1 or server_ready is out, a SIGTERM must drain.
    stop = _catch_signals(force=worker is None)
    configure_process(worker.metrics_dir if worker is not None else None)
    if worker is None:
        notifier = Notifier.from_environ()
        inherited = listen_sockets()
        app = build_app(config, engine)
    else:
        notifier = Notifier.connected(worker.report, f"WORKER={os.getpid()}")
        inherited = worker.sockets
        app = build_app(config, engine, worker.metrics_dir)
        _stop_when_orphaned(worker.lifeline, stop)
    state = app[STATE]
    _reload_tokens_on_sighup(state.admission)
    if worker is not None:
        # Forked with every signal blocked (workers.py): deliver them now.
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
    runner = make_runner(app, config)
    await runner.setup()
    heartbeat: asyncio.Task[None] | None = None
    try:
        where = await _start_sites(runner, config, inherited)
        if worker is None:
            logger.info(
                "server_ready",
                **where,
                path=config.path,
                engine=config.engine,
                routes=state.routes.table(),
                socket_activated=bool(inherited),
            )
        else:
            logger.info("worker_ready", worker=worker.index, pid=os.getpid())
        listening = ", ".join(address_text(a) + config.path for a in runner.addresses)
        if notifier.enabled:
            notifier.send("READY=1", f"STATUS={_status(state.connections, listening)}")
            heartbeat = asyncio.create_task(
                _heartbeat(notifier, state.connections, listening, count=worker is not None)
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


def bind_sockets(config: Config) -> list[socket.socket]:
    """Listening sockets on ``config.unix``, or on every address ``config.host`` names.

    As asyncio's ``create_server`` binds them (address reuse, IPv6 only on
    IPv6 sockets, a stale Unix socket file replaced), so that one daemon, the
    supervisor of ``--workers``, or a test all listen the same way.

    Raises:
        BindError: an address cannot be bound; the message names it.
    """
    where = config.unix or format_address(config.host, config.port)
    sockets: list[socket.socket] = []
    try:
        targets: list[tuple[socket.AddressFamily, socket.SocketKind, int, Any]]
        if config.unix:
            if os.path.exists(config.unix) and stat.S_ISSOCK(os.stat(config.unix).st_mode):
                os.unlink(config.unix)
            targets = [(socket.AF_UNIX, socket.SOCK_STREAM, 0, config.unix)]
        else:
            infos = socket.getaddrinfo(
                config.host or None, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            targets = list(dict.fromkeys((f, k, p, a) for f, k, p, _, a in infos))
        for family, kind, proto, address in targets:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise bind_error(where, exc) from None
    return sockets


def bind_error(where: str, exc: OSError) -> BindError:
    """The one-line error for an address that cannot be listened on."""
    # Say the address once, our way, with the system's reason.
    # (Name-resolution errors carry negative errnos of their own.)
    if exc.errno is not None and exc.errno > 0:
        reason = os.strerror(exc.errno)
    else:
        reason = exc.strerror or str(exc)
    return BindError(f"cannot listen on {where}: {reason.lower()}")


def address_fields(address: str | tuple[Any, ...]) -> dict[str, object]:
    """A listening address as log fields: ``unix``, or ``host`` and ``port``."""
    if isinstance(address, str):
        return {"unix": address}
    return {"host": address[0], "port": address[1]}


def address_text(address: str | tuple[Any, ...]) -> str:
    """A listening address as text: a socket path, or host:port."""
    return address if isinstance(address, str) else format_address(address[0], address[1])


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


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context, if a certificate is configured.

    Raises:
        ValueError: only one of the two files is given.
        OSError, ssl.SSLError: they cannot be loaded.
    """
    if not config.tls_certfile and not config.tls_keyfile:
        return None
    if not (config.tls_certfile and config.tls_keyfile):
        raise ValueError("--tls-certfile and --tls-keyfile go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_certfile, config.tls_keyfile)
    return context


def _reload_tokens_on_sighup(admission: Admission) -> None:
    """SIGHUP reloads the token file; without one, it is logged and changes nothing."""
    tokens = admission.tokens

    def reload() -> None:
        if tokens is None:
            logger.info("reload_skipped", reason="no --auth-token-file to reload")
            return
        try:
            count = tokens.reload()
        except TokenFileError as exc:
            logger.error("tokens_reload_failed", error=str(exc))
        else:
            logger.info("tokens_reloaded", tokens=count)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def _stop_when_orphaned(lifeline: int, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def orphaned() -> None:
        loop.remove_reader(lifeline)
        logger.warning("supervisor_gone")
        stop.set()

    loop.add_reader(lifeline, orphaned)


def _catch_signals(force: bool = True) -> asyncio.Event:
    """An event SIGINT or SIGTERM sets; after it, a second one cancels the drain.

    A worker (``force`` False) ignores signals after the first: its
    supervisor forwards one SIGTERM, and ends a drain cut short with SIGKILL,
    so a ``pkill`` that reaches every process does not force a stop.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    assert main is not None

    def second(signum: int) -> None:
        logger.warning("shutdown_forced", signal=signal.Signals(signum).name)
        main.cancel()

    def first(signum: int) -> None:
        logger.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, second if force else _ignore, sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, first, sig)
    return stop


def _ignore(signum: int) -> None:
    pass


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
