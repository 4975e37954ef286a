"""Prometheus metrics: one registry per app.

What the metrics are is one table, :mod:`.metric_specs`. The session
(:mod:`realtime_daemon.session.scheduler`, through its observer)
accounts for each request exactly: it starts when the session takes it from
the queue and ends when its answer task ends, labelled with the engine that
answered it and its model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

from realtime_daemon.dialects.registry import DIALECTS as REGISTRY
from realtime_daemon.server.metric_specs import SPECS, Spec

__all__ = ["CONTENT_TYPE", "DIALECTS", "OUTCOMES", "SPECS", "Metrics", "Spec", "configure_process"]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
OUTCOMES = ("completed", "cancelled", "error")
DIALECTS = tuple(spec.name for spec in REGISTRY)
"""The ``dialect`` label's values: the registry's dialects."""


def configure_process(multiprocess_dir: str | None) -> None:
    """Set up prometheus_client for this process; call it once, before any :class:`Metrics`.

    It leaves out the ``*_created`` series (they double every scrape for no
    use here) and, under ``--workers``, keeps this process's metric values in
    files in ``multiprocess_dir``: prometheus_client picks its value class
    once, at import, from ``$PROMETHEUS_MULTIPROC_DIR``, and reads that
    variable for the files' place; a worker forked from the supervisor
    imported it before the directory existed, so both are set here.

    Args:
        multiprocess_dir: the directory every worker keeps its values in;
            None for a daemon of one process.
    """
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    if multiprocess_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
        if not getattr(values.ValueClass, "_multiprocess", False):
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class Metrics:
    """The daemon's metrics (:data:`SPECS`), in a registry of their own.

    Args:
        routes: the (engine, model) label pairs requests can have; each
            gets its ``completed`` series from the start.
        multiprocess_dir: under ``--workers``, the directory every worker
            keeps its values in (prometheus_client's multiprocess mode, set
            up by :func:`configure_process`); the registry then reports the
            sum over all workers, and leaves out the per-process collectors,
            which would describe only the one worker that happens to answer
            the scrape.
    """

    connections_open: Gauge
    connections: Counter
    requests: Counter
    chunks: Counter
    refused: Counter
    closes: Counter
    time_to_first_chunk: Histogram
    duration: Histogram
    queue_high_water: Gauge
    pushbacks: Counter
    draining: Gauge
    sessions_held: Gauge
    resumed_total: Counter
    resume_expired_total: Counter
    resume_refused: Counter
    replayed: Counter
    resume_buffer: Gauge
    key_requests: Counter
    key_tokens: Counter
    key_audio_seconds: Counter
    key_refused: Counter
    shared_store_up: Gauge
    shared_store_round_trips: Counter
    shared_up: Gauge
    audio_heard: Counter
    audio_spoken: Counter
    turns: Counter
    transcription_time: Histogram
    transcription_failures: Counter

    def __init__(
        self,
        routes: Iterable[tuple[str, str]],
        multiprocess_dir: str | None = None,
        dialects: Iterable[str] = DIALECTS,
    ) -> None:
        self.registry = CollectorRegistry()
        r: CollectorRegistry | None = self.registry
        if multiprocess_dir is None:
            prometheus_client.ProcessCollector(registry=self.registry)
            prometheus_client.PlatformCollector(registry=self.registry)
        else:
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                self.registry, path=multiprocess_dir
            )
            r = None  # values live in the files the collector reads
        for spec in SPECS:
            setattr(self, spec.attribute, spec.make(r))
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

    # -- dialects.realtime.voice.VoiceObserver -----------------------------------------

    def heard(self, engine: str, seconds: float) -> None:
        self.audio_heard.labels(engine).inc(seconds)

    def turn_detected(self, engine: str) -> None:
        self.turns.labels(engine).inc()

    def spoke(self, engine: str, seconds: float) -> None:
        self.audio_spoken.labels(engine).inc(seconds)

    def transcribed(self, engine: str, seconds: float, code: str | None) -> None:
        self.transcription_time.labels(engine).observe(seconds)
        if code is not None:
            self.transcription_failures.labels(engine, code).inc()

    # -- session.host.HostObserver -------------------------------------------------------

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
