"""Prometheus metrics: one registry per app, and per-connection request accounting.

Request boundaries come from the request channel, so they hold for any
engine that answers in order, whether or not the daemon reads its chunks: a
request starts when the engine takes it, and is done when the engine asks for
the next one (or the stream ends).
"""

from __future__ import annotations

import os
import time

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

from .protocol import Envelope

__all__ = ["CONTENT_TYPE", "OUTCOMES", "Metrics", "RequestTracker"]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
OUTCOMES = ("completed", "cancelled", "error")

# Streaming LLM latencies: first chunks in milliseconds to seconds, whole
# answers in seconds to minutes.
FIRST_CHUNK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The daemon's metrics, in a registry of their own.

    Args:
        engine: the engine's name, as the ``engine`` label.
        multiprocess_dir: under ``--workers``, the directory every worker
            keeps its values in (prometheus_client's multiprocess mode); the
            registry then reports the sum over all workers, and leaves out
            the per-process collectors, which would describe only the one
            worker that happens to answer the scrape.
    """

    def __init__(self, engine: str, multiprocess_dir: str | None = None) -> None:
        # The *_created series double every scrape for no use here.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.engine = engine
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
            "Requests answered, by engine and outcome (completed, cancelled, error).",
            ["engine", "outcome"],
            registry=r,
        )
        self.chunks = Counter(
            "realtime_daemon_chunks_sent", "Envelopes sent to clients.", registry=r
        )
        self.closes = Counter(
            "realtime_daemon_closes", "Connections ended, by close code.", ["code"], registry=r
        )
        self.first_chunk = Histogram(
            "realtime_daemon_time_to_first_chunk_seconds",
            "From the engine taking a request to its first envelope being sent.",
            buckets=FIRST_CHUNK_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "realtime_daemon_request_duration_seconds",
            "From the engine taking a request to the end of its answer.",
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
        self._queue_high_water = 0
        for outcome in OUTCOMES:
            self.requests.labels(engine, outcome)

    def note_queue_depth(self, depth: int) -> None:
        """Raise the queue high-water mark to ``depth`` if it is higher."""
        if depth > self._queue_high_water:
            self._queue_high_water = depth
            self.queue_high_water.set(depth)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return prometheus_client.generate_latest(self.registry)

    def tracker(self) -> RequestTracker:
        """Accounting for one new connection."""
        return RequestTracker(self)


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


class RequestTracker:
    """One connection's request accounting; the channel and the writer feed it."""

    __slots__ = ("_chunks", "_failed", "_first_sent", "_metrics", "_started")

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._chunks = 0  # added to the counter per answer, not per chunk
        self._started: float | None = None
        self._first_sent = False
        self._failed = False

    @property
    def in_progress(self) -> bool:
        """Whether the engine is answering a request."""
        return self._started is not None

    def asked(self) -> None:
        """The engine asks for its next request: the one it had is answered."""
        if self._started is not None:
            self._finish("error" if self._failed else "completed")

    def took(self, depth: int) -> None:
        """The engine took a request; ``depth`` were queued before it did."""
        self.asked()
        self._started = time.monotonic()
        self._first_sent = False
        self._failed = False
        self._metrics.note_queue_depth(depth)

    def pushed_back(self) -> None:
        """The reader found the queue full and waits."""
        self._metrics.pushbacks.inc()

    def sent(self, envelope: Envelope) -> None:
        """An envelope of the current answer went out."""
        self._chunks += 1
        if self._started is None:
            return
        if not self._first_sent:
            self._first_sent = True
            self._metrics.first_chunk.observe(time.monotonic() - self._started)
        if envelope.event == "error":
            self._failed = True

    def ended(self, code: int, outcome: str) -> None:
        """The connection closed with ``code``; an answer still open ends as ``outcome``."""
        if self._started is not None:
            self._finish("error" if self._failed else outcome)
        self._flush_chunks()
        self._metrics.closes.labels(str(code)).inc()

    def _flush_chunks(self) -> None:
        if self._chunks:
            self._metrics.chunks.inc(self._chunks)
            self._chunks = 0

    def _finish(self, outcome: str) -> None:
        assert self._started is not None
        metrics = self._metrics
        metrics.requests.labels(metrics.engine, outcome).inc()
        metrics.duration.observe(time.monotonic() - self._started)
        self._started = None
        self._flush_chunks()
