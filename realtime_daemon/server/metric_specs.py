"""The daemon's metrics, one table: each metric's attribute, kind, name, help and labels.

:class:`~.metrics.Metrics` makes one of each in its registry; a new metric is a
row here and an annotation there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SPECS", "Spec"]

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
