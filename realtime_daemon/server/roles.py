"""What a serving process is: the daemon on its own, or a worker of ``--workers``.

:func:`~.serve.serve` is the same for both; a :class:`Role` answers where
they differ: which sockets it serves, whom it notifies, what it logs once it
listens, where its metrics live, and what a second signal does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
from typing import ClassVar, Protocol

import structlog

from realtime_daemon.config import Config
from realtime_daemon.server.app import State
from realtime_daemon.server.signals import stop_when_orphaned
from realtime_daemon.server.systemd import Notifier, listen_sockets

__all__ = ["STANDALONE", "Role", "Standalone", "Worker"]

logger = structlog.get_logger("realtime_daemon")


class Role(Protocol):
    """Where a daemon on its own and a worker of ``--workers`` serve differently."""

    @property
    def metrics_dir(self) -> str | None:
        """The directory the workers keep their metrics in; None on its own."""

    @property
    def forced_by_second_signal(self) -> bool:
        """Whether a second SIGINT/SIGTERM cuts the drain short."""

    @property
    def counts_connections(self) -> bool:
        """Whether STATUS= notifications carry ``CONNECTIONS=<n>``."""

    def sockets(self) -> list[socket.socket]:
        """Listening sockets to serve; empty: bind them from the settings."""

    def notifier(self) -> Notifier:
        """Where READY=1, STATUS=, STOPPING=1 and WATCHDOG=1 go."""

    def started(self, stop: asyncio.Event) -> None:
        """The signal handlers are in place; ``stop`` is the event they set."""

    def announce(
        self, config: Config, state: State, where: dict[str, object], activated: bool
    ) -> None:
        """Log that the process listens, at ``where`` (``activated``: on systemd's sockets)."""


@dataclasses.dataclass(frozen=True)
class Standalone:
    """The daemon in one process: systemd's sockets or its own, systemd's notify socket."""

    metrics_dir: ClassVar[None] = None
    forced_by_second_signal: ClassVar[bool] = True
    counts_connections: ClassVar[bool] = False

    def sockets(self) -> list[socket.socket]:
        return listen_sockets()

    def notifier(self) -> Notifier:
        return Notifier.from_environ()

    def started(self, stop: asyncio.Event) -> None:
        pass

    def announce(
        self, config: Config, state: State, where: dict[str, object], activated: bool
    ) -> None:
        logger.info(
            "server_ready",
            **where,
            path=config.path,
            engine=config.engine,
            routes=state.routes.table(),
            socket_activated=activated,
        )


STANDALONE = Standalone()


@dataclasses.dataclass(frozen=True)
class Worker:
    """A worker of ``--workers``: what it serves with, from its supervisor (workers.py).

    Attributes:
        index: the worker's number, 1 to N, in its log lines.
        listening: the supervisor's listening sockets, served instead of binding.
        metrics_dir: the directory all workers keep their metrics in.
        report: a connected datagram socket to the supervisor, which gets the
            notifications (READY=1, WATCHDOG=1, ...) systemd would, each with
            a ``WORKER=<pid>`` field.
        lifeline: the read end of a pipe only the supervisor writes to: it
            reads end-of-file when the supervisor is gone, and the worker
            drains as on SIGTERM rather than serve on unsupervised.
    """

    index: int
    listening: list[socket.socket]
    metrics_dir: str
    report: socket.socket
    lifeline: int
    # Its supervisor forwards one SIGTERM and ends a drain cut short with
    # SIGKILL: a pkill that reaches every process must not force a stop.
    forced_by_second_signal: ClassVar[bool] = False
    counts_connections: ClassVar[bool] = True  # the supervisor adds them up

    def sockets(self) -> list[socket.socket]:
        return self.listening

    def notifier(self) -> Notifier:
        return Notifier.connected(self.report, f"WORKER={os.getpid()}")

    def started(self, stop: asyncio.Event) -> None:
        stop_when_orphaned(self.lifeline, stop)
        # Forked with every signal blocked (workers.py): deliver them now.
        signal.pthread_sigmask(signal.SIG_SETMASK, ())

    def announce(
        self, config: Config, state: State, where: dict[str, object], activated: bool
    ) -> None:
        logger.info("worker_ready", worker=self.index, pid=os.getpid())
