"""Run the daemon: bind, log ``server_ready``, wait for a signal, drain, exit."""

from __future__ import annotations

import asyncio
import os
import signal

import structlog
from aiohttp import web

from .app import STATE, build_app
from .config import Config
from .engines.base import Engine
from .handler import CLOSE_TIMEOUT

__all__ = ["BindError", "ForcedStop", "make_runner", "run", "serve"]

logger = structlog.get_logger("realtime_daemon")


class BindError(Exception):
    """The daemon cannot listen where it was told; the message names host and port."""


class ForcedStop(Exception):
    """A second signal stopped the daemon before its drain finished."""


def run(config: Config) -> None:
    """Serve until SIGINT or SIGTERM, then drain and return.

    Raises:
        BindError: the address cannot be bound.
        ForcedStop: a second signal cut the drain short.
    """
    try:
        asyncio.run(serve(config))
    except asyncio.CancelledError:
        raise ForcedStop("stopped by a second signal before the drain finished") from None


async def serve(config: Config, engine: Engine | None = None) -> None:
    """Serve ``config`` until SIGINT or SIGTERM; a second signal stops at once."""
    app = build_app(config, engine)
    runner = make_runner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            # asyncio folds the address into strerror; say it once, our way.
            # (Name-resolution errors carry negative errnos of their own.)
            if exc.errno is not None and exc.errno > 0:
                reason = os.strerror(exc.errno)
            else:
                reason = exc.strerror or str(exc)
            raise BindError(
                f"cannot listen on {_address(config.host, config.port)}: {reason.lower()}"
            ) from None
        host, port = runner.addresses[0][:2]
        logger.info(
            "server_ready", host=host, port=port, path=config.path, engine=config.engine
        )
        await _wait_for_signal()
        logger.info(
            "shutdown_started",
            connections=len(app[STATE].connections),
            timeout_s=config.shutdown_timeout,
        )
    finally:
        await runner.cleanup()
    logger.info("server_stopped")


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner the daemon serves ``app`` with; tests start theirs the same way."""
    # The drain (app.on_shutdown) bounds every connection; the runner's own
    # timeout only has to cover handlers that are already closing.
    return web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=CLOSE_TIMEOUT
    )


async def _wait_for_signal() -> None:
    """Wait for SIGINT or SIGTERM; after it, a second one cancels the drain."""
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
            loop.add_signal_handler(sig, second, sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, first, sig)
    await stop.wait()


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
