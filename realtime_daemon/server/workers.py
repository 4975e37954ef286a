"""``--workers N``: a supervisor process and N forked workers on its listening sockets.

The supervisor binds the listening socket (or takes systemd's), forks N
workers that each run the whole daemon on it (``serve.run`` with a
:class:`~.roles.Worker` role), and from then on only supervises:

- READY=1 to systemd, and ``server_ready`` in the log, once every worker is ready;
- SIGTERM or SIGINT: stop listening and forward SIGTERM, so every worker drains
  its connections; a second signal cuts the drains short (SIGKILL to workers);
- SIGHUP is forwarded (token files are reloaded);
- a worker that dies while serving is replaced; one that dies before it was ever
  ready stops the daemon (exit 1), since a new one would fail the same way;
- the watchdog: each worker pings the supervisor from its own event loop; a
  worker silent for WatchdogSec is killed and replaced, and the supervisor
  pings systemd.

Workers report over one datagram socket pair, in sd_notify's format, with a
``WORKER=<pid>`` field. They share one accept queue: a connection goes to
whichever worker accepts it first, so a busy worker takes fewer. Metrics are
kept in prometheus_client's multiprocess files, so ``/metrics`` from any worker
sums all of them. Workers run in their own process group: a terminal's Ctrl-C
reaches the supervisor only, which then drains them once; and a worker whose
supervisor is gone (killed with SIGKILL) drains and exits by itself.

The supervisor forks, so it runs no event loop: one ``select`` over the
reports and a signal wake-up socket.
"""

from __future__ import annotations

import dataclasses
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

import structlog
from prometheus_client import multiprocess

from realtime_daemon.config import Config
from realtime_daemon.engines.routes import Routes
from realtime_daemon.server.roles import Worker
from realtime_daemon.server.serve import ForcedStop, run
from realtime_daemon.server.sockets import address_fields, address_text, bind_sockets
from realtime_daemon.server.systemd import Notifier, listen_sockets, watchdog_interval

__all__ = ["WorkerFailed", "supervise"]

logger = structlog.get_logger("realtime_daemon")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)


class WorkerFailed(Exception):
    """A worker could not start, or failed its drain; the message says which."""


def supervise(config: Config, engine: Routes) -> None:
    """Serve ``config`` with ``config.workers`` processes until SIGINT or SIGTERM.

    Raises:
        BindError: the address cannot be bound.
        WorkerFailed: a worker exited before it was ready, or not cleanly.
        ForcedStop: a second signal cut the drain short.
    """
    inherited = listen_sockets()
    sockets = inherited or bind_sockets(config)
    supervisor = _Supervisor(config, engine, sockets, bool(inherited))
    try:
        supervisor.serve()
    finally:
        supervisor.close()


@dataclasses.dataclass
class _Child:
    index: int
    ready: bool = False
    last_ping: float = 0.0
    connections: int = 0


class _Supervisor:
    def __init__(
        self, config: Config, engine: Routes, sockets: list[socket.socket], activated: bool
    ) -> None:
        self.pid = os.getpid()
        self.config = config
        self.engine = engine
        self.sockets = sockets
        self.activated = activated
        self.metrics_dir = tempfile.mkdtemp(prefix="realtime-daemon-metrics-")
        self.inbox, self.outbox = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.wakeup, self.wakeup_w = socket.socketpair()
        # A report the supervisor cannot take now is dropped, never waited for.
        self.outbox.setblocking(False)
        # Workers see end-of-file here when the supervisor is gone, however it went.
        self.lifeline, self.lifeline_w = os.pipe()
        for s in (self.inbox, self.wakeup, self.wakeup_w):
            s.setblocking(False)
        self.notifier = Notifier.from_environ()
        self.watchdog = watchdog_interval()
        self.children: dict[int, _Child] = {}
        self.pending: list[int] = []
        self.announced = False
        self.last_status = ""
        self.stopping = False
        self.forced = False
        self.failures: list[str] = []
        self.listening = ", ".join(address_text(s.getsockname()) + config.path for s in sockets)
        self.where = address_fields(sockets[0].getsockname())

    def serve(self) -> None:
        for sig in SIGNALS:
            signal.signal(sig, lambda signum, _: self.pending.append(signum))
        signal.set_wakeup_fd(self.wakeup_w.fileno(), warn_on_full_buffer=False)
        try:
            for index in range(1, self.config.workers + 1):
                self._spawn(index)
            next_tick = time.monotonic()
            while self.children:
                timeout = max(next_tick - time.monotonic(), 0) if self.watchdog else None
                select.select([self.inbox, self.wakeup], [], [], timeout)
                _drain_socket(self.wakeup)
                self._read_reports()
                while self.pending:
                    self._on_signal(self.pending.pop(0))
                self._reap()
                self._update_status()
                if self.watchdog and time.monotonic() >= next_tick:
                    self._feed_watchdog()
                    next_tick = time.monotonic() + self.watchdog
        except WorkerFailed:
            self._stop_workers()
            raise
        finally:
            signal.set_wakeup_fd(-1)
        logger.info("server_stopped")
        if self.forced:
            raise ForcedStop("stopped by a second signal before the drain finished")
        if self.failures:
            raise WorkerFailed("; ".join(self.failures))

    def _spawn(self, index: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._work(index)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        self.children[pid] = _Child(index)
        logger.info("worker_started", worker=index, pid=pid)

    def _work(self, index: int) -> None:
        """The worker process: the whole daemon on the supervisor's sockets."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            # Still blocked since the fork: a signal arriving now waits until
            # serve() has its handlers in place, and then drains as it should.
            for sig in SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            os.setpgid(0, 0)
            for s in (self.inbox, self.wakeup, self.wakeup_w):
                s.close()
            os.close(self.lifeline_w)
            self.notifier.close()
            os.environ.pop("NOTIFY_SOCKET", None)
            if "WATCHDOG_USEC" in os.environ:
                os.environ["WATCHDOG_PID"] = str(os.getpid())
            structlog.contextvars.bind_contextvars(worker=index)
            worker = Worker(index, self.sockets, self.metrics_dir, self.outbox, self.lifeline)
            run(self.config, self.engine, worker)
            code = 0
        except ForcedStop as exc:
            logger.warning("worker_stopped", reason=str(exc))
        except BaseException:
            logger.exception("worker_failed")
        finally:
            if os.getppid() != self.pid:
                # The supervisor was killed and cannot clean up: an orphaned
                # worker removes the metrics directory on its way out.
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
            sys.stderr.flush()
            os._exit(code)

    def _read_reports(self) -> None:
        while True:
            try:
                message = self.inbox.recv(4096).decode()
            except BlockingIOError:
                return
            fields = dict(line.partition("=")[::2] for line in message.split("\n"))
            child = self.children.get(int(fields.get("WORKER", "0")))
            if child is None:
                continue
            child.last_ping = time.monotonic()
            if fields.get("CONNECTIONS", "").isdigit():
                child.connections = int(fields["CONNECTIONS"])
            if fields.get("READY") == "1":
                child.ready = True
                self._announce()

    def _announce(self) -> None:
        """server_ready and READY=1, once, when every worker is ready."""
        if self.announced or not all(c.ready for c in self.children.values()):
            return
        self.announced = True
        logger.info(
            "server_ready",
            **self.where,
            path=self.config.path,
            engine=self.config.engine,
            routes=self.engine.table(),
            socket_activated=self.activated,
            workers=len(self.children),
            pids=sorted(self.children),
        )
        self.last_status = self._status()
        self.notifier.send("READY=1", f"STATUS={self.last_status}")

    def _status(self) -> str:
        """The STATUS= line: the workers' connections, as their last reports said."""
        connections = sum(c.connections for c in self.children.values())
        workers = len(self.children)
        if self.stopping:
            return f"draining {workers} workers, {connections} connections"
        return f"serving {self.listening} with {workers} workers, {connections} connections"

    def _update_status(self) -> None:
        status = self._status()
        if self.announced and status != self.last_status:
            self.notifier.send(f"STATUS={status}")
            self.last_status = status

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return  # reaped after every wake-up
        if signum == signal.SIGHUP:
            self._forward(signal.SIGHUP)
            return
        name = signal.Signals(signum).name
        if self.stopping:
            logger.warning("shutdown_forced", signal=name)
            self.forced = True
            self._forward(signal.SIGKILL)
        else:
            logger.info("signal_received", signal=name)
            self.stopping = True
            logger.info("shutdown_started", workers=len(self.children))
            self.last_status = self._status()
            self.notifier.send("STOPPING=1", f"STATUS={self.last_status}")
            # The workers stop listening too; with nobody holding the socket
            # new connections are refused (or wait in systemd's, if activated).
            for s in self.sockets:
                s.close()
            self._forward(signal.SIGTERM)

    def _forward(self, signum: int) -> None:
        for pid in self.children:
            os.kill(pid, signum)

    def _reap(self) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                logger.info("worker_stopped", worker=child.index, pid=pid, exit_code=code)
                if code != 0 and not self.forced:
                    self.failures.append(f"worker {child.index} exited with code {code}")
                continue
            logger.error("worker_exited", worker=child.index, pid=pid, exit_code=code)
            if not child.ready:
                raise WorkerFailed(
                    f"worker {child.index} exited with code {code} before it was ready"
                )
            self._spawn(child.index)

    def _feed_watchdog(self) -> None:
        """Kill workers silent for WatchdogSec (they are replaced); ping systemd."""
        assert self.watchdog is not None
        silent_since = time.monotonic() - 2 * self.watchdog
        for pid, child in self.children.items():
            if child.ready and child.last_ping < silent_since:
                logger.error("worker_unresponsive", worker=child.index, pid=pid)
                os.kill(pid, signal.SIGKILL)
        self.notifier.send("WATCHDOG=1")

    def _stop_workers(self) -> None:
        """After a failed start: stop the workers that did start, and wait for them."""
        self._forward(signal.SIGTERM)
        for pid in list(self.children):
            os.waitpid(pid, 0)
            multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]
        self.children.clear()

    def close(self) -> None:
        for s in (*self.sockets, self.inbox, self.outbox, self.wakeup, self.wakeup_w):
            s.close()
        os.close(self.lifeline)
        os.close(self.lifeline_w)
        self.notifier.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def _drain_socket(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass
