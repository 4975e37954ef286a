"""Prometheus metrics: one registry per app.

The session (:mod:`realtime_daemon.session.scheduler`, through its observer)
accounts for each request exactly: it starts when the session takes it from
the queue and ends when its answer task ends, labelled with the engine that
answered it and its model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

from realtime_daemon.dialects.registry import DIALECTS as REGISTRY

__all__ = ["CONTENT_TYPE", "DIALECTS", "OUTCOMES", "SPECS", "Metrics", "Spec", "configure_process"]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
OUTCOMES = ("completed", "cancelled", "error")
DIALECTS = tuple(spec.name for spec in REGISTRY)
"""The ``dialect`` label's values: the registry's dialects."""

# Streaming LLM latencies: first chunks in milliseconds to seconds, whole
# answers in seconds to minutes.
FIRST_CHUNK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One metric of :class:`Metrics`: the attribute it is kept in, and how it is made.

    Attributes:
        attribute: the :class:`Metrics` attribute that holds it.
        kind: Counter, Gauge or Histogram.
        name: the metric's name (a Counter's series get ``_total``).
        help: its help text.
        labels: its label names.
        buckets: a Histogram's buckets.
        mode: a Gauge's multiprocess mode, how the workers' values add up
            (``livesum``, ``livemax``; prometheus_client's default otherwise).
    """

    attribute: str
    kind: type[Counter | Gauge | Histogram]
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    mode: str = ""

    def make(self, registry: CollectorRegistry | None) -> Counter | Gauge | Histogram:
        """The metric, in ``registry`` (None: multiprocess files only)."""
        extra: dict[str, Any] = {}
        if self.buckets:
            extra["buckets"] = self.buckets
        if self.mode:
            extra["multiprocess_mode"] = self.mode
        return self.kind(self.name, self.help, self.labels, registry=registry, **extra)


# Transcriptions: a second of audio in tens of milliseconds (local, fast servers)
# to several seconds (a loaded server, a long turn).
TRANSCRIPTION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

SPECS = (
    Spec(
        "audio_heard",
        Counter,
        "realtime_daemon_audio_input_seconds",
        "Seconds of audio appended by Realtime clients, by speech-to-text engine.",
        ("engine",),
    ),
    Spec(
        "audio_spoken",
        Counter,
        "realtime_daemon_audio_output_seconds",
        "Seconds of spoken answers sent to Realtime clients, by text-to-speech engine.",
        ("engine",),
    ),
    Spec(
        "turns",
        Counter,
        "realtime_daemon_turns_detected",
        "Turns whose end the turn detector found, by speech-to-text engine.",
        ("engine",),
    ),
    Spec(
        "transcription_time",
        Histogram,
        "realtime_daemon_transcription_seconds",
        "From a turn's commit to its transcript (or failure), by speech-to-text engine.",
        ("engine",),
        buckets=TRANSCRIPTION_BUCKETS,
    ),
    Spec(
        "transcription_failures",
        Counter,
        "realtime_daemon_transcription_failures",
        "Transcriptions that failed, by speech-to-text engine and code.",
        ("engine", "code"),
    ),
    Spec(
        "connections_open",
        Gauge,
        "realtime_daemon_connections_open",
        "WebSocket connections open now.",
        mode="livesum",
    ),
    Spec("connections", Counter, "realtime_daemon_connections", "WebSocket connections accepted."),
    Spec(
        "requests",
        Counter,
        "realtime_daemon_requests",
        "Requests (Realtime responses) answered, by engine, model and outcome (completed,"
        " cancelled, error), with the reason a request was cancelled or the code of its"
        " error, and the dialect (chat, openai-realtime).",
        ("engine", "model", "outcome", "reason", "dialect"),
    ),
    Spec("chunks", Counter, "realtime_daemon_chunks_sent", "Envelopes sent to clients."),
    Spec(
        "refused",
        Counter,
        "realtime_daemon_upgrades_refused",
        "WebSocket upgrades refused before the handshake, by reason (shutting_down,"
        " too_many_connections, origin_not_allowed, unauthorized).",
        ("reason",),
    ),
    Spec(
        "closes", Counter, "realtime_daemon_closes", "Connections ended, by close code.", ("code",)
    ),
    Spec(
        "time_to_first_chunk",
        Histogram,
        "realtime_daemon_time_to_first_chunk_seconds",
        "From the session taking a request to its first envelope being sent.",
        buckets=FIRST_CHUNK_BUCKETS,
    ),
    Spec(
        "duration",
        Histogram,
        "realtime_daemon_request_duration_seconds",
        "From the session taking a request to the end of its answer.",
        buckets=DURATION_BUCKETS,
    ),
    Spec(
        "queue_high_water",
        Gauge,
        "realtime_daemon_request_queue_high_water",
        "Most requests any one connection has had queued.",
        mode="livemax",
    ),
    Spec(
        "pushbacks",
        Counter,
        "realtime_daemon_request_queue_pushbacks",
        "Times a connection's reader waited for room in its full request queue.",
    ),
    Spec(
        "draining",
        Gauge,
        "realtime_daemon_draining",
        "1 once the daemon is shutting down.",
        mode="livemax",
    ),
    Spec(
        "sessions_held",
        Gauge,
        "realtime_daemon_sessions_held",
        "Resumable sessions held now without a connection.",
        mode="livesum",
    ),
    Spec(
        "resumed_total",
        Counter,
        "realtime_daemon_sessions_resumed",
        "Sessions resumed on a new connection.",
    ),
    Spec(
        "resume_expired_total",
        Counter,
        "realtime_daemon_sessions_expired",
        "Held sessions ended because no resume came within --resume-window.",
    ),
    Spec(
        "resume_refused",
        Counter,
        "realtime_daemon_resumes_refused",
        "Resuming upgrades refused, by reason (resume_unknown, resume_forbidden,"
        " resume_gap, resume_invalid, resume_unavailable).",
        ("reason",),
    ),
    Spec(
        "replayed",
        Counter,
        "realtime_daemon_envelopes_replayed",
        "Envelopes replayed to resumed sessions.",
    ),
    Spec(
        "key_requests",
        Counter,
        "realtime_daemon_key_requests",
        "Answers per key (by name, from --keys-file) and model, by outcome.",
        ("key", "model", "outcome"),
    ),
    Spec(
        "key_tokens",
        Counter,
        "realtime_daemon_key_tokens",
        "The engines' tokens per key and model, in (prompt) and out (completion).",
        ("key", "model", "direction"),
    ),
    Spec(
        "key_audio_seconds",
        Counter,
        "realtime_daemon_key_audio_seconds",
        "Seconds of audio per key and model, in and out, where voice is on.",
        ("key", "model", "direction"),
    ),
    Spec(
        "key_refused",
        Counter,
        "realtime_daemon_key_refused",
        "Requests and sessions refused by a key's models or quotas, by reason"
        " (model_not_allowed, rate_limit_exceeded, too_many_sessions).",
        ("key", "reason"),
    ),
    Spec(
        "shared_store_up",
        Gauge,
        "realtime_daemon_shared_store_up",
        "1 while --redis-url answers, 0 while each instance counts its keys' quotas alone.",
        mode="livemin",
    ),
    Spec(
        "shared_store_round_trips",
        Counter,
        "realtime_daemon_shared_store_round_trips",
        "Calls to --redis-url's Redis (a pipeline is one): session leases, batched counts.",
    ),
    Spec(
        "resume_buffer",
        Gauge,
        "realtime_daemon_resume_buffer_bytes",
        "Bytes of envelopes resumable sessions keep for replay (at the last scrape).",
        mode="livesum",
    ),
    Spec(
        "shared_up",
        Gauge,
        "realtime_daemon_store_up",
        "Whether what a dialect's connections share (the Responses store) worked at its"
        " last use, at the last scrape: 1 or 0.",
        ("dialect",),
        mode="livemin",
    ),
)
"""Every metric of the daemon, in the order a scrape lists them."""


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
