"""The signals a serving process answers: SIGINT/SIGTERM stop it, SIGHUP reloads keys."""

from __future__ import annotations

import asyncio
import signal

import structlog

from realtime_daemon.server.admission import Admission
from realtime_daemon.server.connections import KeySessions
from realtime_daemon.server.keys import KeyFileError

__all__ = ["catch_signals", "reload_keys_on_sighup", "stop_when_orphaned"]

logger = structlog.get_logger("realtime_daemon")


def catch_signals(force: bool = True) -> asyncio.Event:
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


def reload_keys_on_sighup(admission: Admission, sessions: KeySessions) -> None:
    """SIGHUP reloads the keys and token files; the sessions of a key removed or
    disabled close (1008). Without either file, it is logged and changes nothing."""
    keyring = admission.keyring

    def reload() -> None:
        if keyring is None:
            logger.info("reload_skipped", reason="no --keys-file or --auth-token-file to reload")
            return
        try:
            gone = keyring.reload()
        except KeyFileError as exc:
            logger.error("keys_reload_failed", error=str(exc))
            return
        closed = sessions.revoke(gone)
        logger.info("keys_reloaded", keys=len(keyring), revoked=sorted(gone), closed=closed)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def stop_when_orphaned(lifeline: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once ``lifeline`` (a pipe's read end) reads end-of-file: the
    process at its other end, the supervisor, is gone."""
    loop = asyncio.get_running_loop()

    def orphaned() -> None:
        loop.remove_reader(lifeline)
        logger.warning("supervisor_gone")
        stop.set()

    loop.add_reader(lifeline, orphaned)
