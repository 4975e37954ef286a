"""Prometheus metrics: one registry per app.

The session (:mod:`.session`) accounts for each request exactly: it starts
when the session takes it from the queue and ends when its answer task ends,
labelled with the engine that answered it and its model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

from realtime_daemon.dialects.registry import DIALECTS as REGISTRY

__all__ = ["CONTENT_TYPE", "DIALECTS", "OUTCOMES", "Metrics"]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
OUTCOMES = ("completed", "cancelled", "error")
DIALECTS = tuple(spec.name for spec in REGISTRY)
"""The ``dialect`` label's values: the registry's dialects."""

# Streaming LLM latencies: first chunks in milliseconds to seconds, whole
# answers in seconds to minutes.
FIRST_CHUNK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The daemon's metrics, in a registry of their own.

    Args:
        routes: the (engine, model) label pairs requests can have; each
            gets its ``completed`` series from the start.
        multiprocess_dir: under ``--workers``, the directory every worker
            keeps its values in (prometheus_client's multiprocess mode); the
            registry then reports the sum over all workers, and leaves out
            the per-process collectors, which would describe only the one
            worker that happens to answer the scrape.
    """

    def __init__(
        self,
        routes: Iterable[tuple[str, str]],
        multiprocess_dir: str | None = None,
        dialects: Iterable[str] = DIALECTS,
    ) -> None:
        # The *_created series double every scrape for no use here.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r: CollectorRegistry | None = self.registry
        if multiprocess_dir is None:
            prometheus_client.ProcessCollector(registry=self.registry)
            prometheus_client.PlatformCollector(registry=self.registry)
        else:
            _use_multiprocess_values(multiprocess_dir)
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                self.registry, path=multiprocess_dir
            )
            r = None  # values live in the files the collector reads
        self.connections_open = Gauge(
            "realtime_daemon_connections_open",
            "WebSocket connections open now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.connections = Counter(
            "realtime_daemon_connections", "WebSocket connections accepted.", registry=r
        )
        self.requests = Counter(
            "realtime_daemon_requests",
            "Requests (Realtime responses) answered, by engine, model and outcome (completed,"
            " cancelled, error), with the reason a request was cancelled or the code of its"
            " error, and the dialect (chat, openai-realtime).",
            ["engine", "model", "outcome", "reason", "dialect"],
            registry=r,
        )
        self.chunks = Counter(
            "realtime_daemon_chunks_sent", "Envelopes sent to clients.", registry=r
        )
        self.refused = Counter(
            "realtime_daemon_upgrades_refused",
            "WebSocket upgrades refused before the handshake, by reason (shutting_down,"
            " too_many_connections, origin_not_allowed, unauthorized).",
            ["reason"],
            registry=r,
        )
        self.closes = Counter(
            "realtime_daemon_closes", "Connections ended, by close code.", ["code"], registry=r
        )
        self.time_to_first_chunk = Histogram(
            "realtime_daemon_time_to_first_chunk_seconds",
            "From the session taking a request to its first envelope being sent.",
            buckets=FIRST_CHUNK_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "realtime_daemon_request_duration_seconds",
            "From the session taking a request to the end of its answer.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_high_water = Gauge(
            "realtime_daemon_request_queue_high_water",
            "Most requests any one connection has had queued.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.pushbacks = Counter(
            "realtime_daemon_request_queue_pushbacks",
            "Times a connection's reader waited for room in its full request queue.",
            registry=r,
        )
        self.draining = Gauge(
            "realtime_daemon_draining",
            "1 once the daemon is shutting down.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.sessions_held = Gauge(
            "realtime_daemon_sessions_held",
            "Resumable sessions held now without a connection.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.resumed_total = Counter(
            "realtime_daemon_sessions_resumed",
            "Sessions resumed on a new connection.",
            registry=r,
        )
        self.resume_expired_total = Counter(
            "realtime_daemon_sessions_expired",
            "Held sessions ended because no resume came within --resume-window.",
            registry=r,
        )
        self.resume_refused = Counter(
            "realtime_daemon_resumes_refused",
            "Resuming upgrades refused, by reason (resume_unknown, resume_forbidden,"
            " resume_gap, resume_invalid, resume_unavailable).",
            ["reason"],
            registry=r,
        )
        self.replayed = Counter(
            "realtime_daemon_envelopes_replayed",
            "Envelopes replayed to resumed sessions.",
            registry=r,
        )
        self.resume_buffer = Gauge(
            "realtime_daemon_resume_buffer_bytes",
            "Bytes of envelopes resumable sessions keep for replay (at the last scrape).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._queue_high_water = 0
        dialects = tuple(dialects)
        for engine, model in routes:
            for dialect in dialects:
                self.requests.labels(engine, model, "completed", "", dialect)

    def took(self, depth: int) -> None:
        """A session took a request; ``depth`` were queued: raise the high-water mark."""
        if depth > self._queue_high_water:
            self._queue_high_water = depth
            self.queue_high_water.set(depth)

    def pushed_back(self) -> None:
        """A reader found its queue full and waits."""
        self.pushbacks.inc()

    # -- session.scheduler.SessionObserver ------------------------------------------------

    def first_chunk(self, seconds: float) -> None:
        self.time_to_first_chunk.observe(seconds)

    def answer_ended(self, seconds: float) -> None:
        self.duration.observe(seconds)

    def answered(self, engine: str, model: str, outcome: str, reason: str, dialect: str) -> None:
        self.requests.labels(engine, model, outcome, reason, dialect).inc()

    def sent(self, envelopes: int) -> None:
        self.chunks.inc(envelopes)

    # -- transport.connection.ConnectionObserver ---------------------------------------------

    def held(self, change: int) -> None:
        self.sessions_held.inc(change)

    def resume_expired(self) -> None:
        self.resume_expired_total.inc()

    def resumed(self, replayed: int) -> None:
        self.resumed_total.inc()
        self.replayed.inc(replayed)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return prometheus_client.generate_latest(self.registry)


def _use_multiprocess_values(directory: str) -> None:
    """Keep this process's metric values in files in ``directory``.

    prometheus_client picks its value class once, at import, from
    ``$PROMETHEUS_MULTIPROC_DIR``, and reads that variable for the files'
    place; a worker forked from the supervisor imported it before the
    directory existed, so both are set here, once per process.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
