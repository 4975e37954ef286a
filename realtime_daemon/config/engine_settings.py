"""The built-in engines' options as settings: their types, constraints and descriptions.

The echo and openai engines declare these as their ``Options`` fields; the daemon's
:class:`~.settings.Config` and a ``[[models]]`` entry keep them as settings too
(``--echo-delay-ms``, ``--upstream-url``, ...), the spelling of earlier versions,
which reaches the engine's options of the same name. One type each, so that both
spellings are checked and described alike.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

__all__ = [
    "ENGINE_SETTINGS",
    "AtLeastOne",
    "EchoDelayMs",
    "NonNegative",
    "Port",
    "Positive",
    "UpstreamAPIKey",
    "UpstreamConnectTimeout",
    "UpstreamMaxConnections",
    "UpstreamMaxEventSize",
    "UpstreamModel",
    "UpstreamReadTimeout",
    "UpstreamURLs",
]

Port = Annotated[int, Meta(ge=0, le=65535)]
NonNegative = Annotated[float, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
AtLeastOne = Annotated[int, Meta(ge=1)]

EchoDelayMs = Annotated[
    NonNegative,
    Meta(
        description="Echo engine: pause before each character, in milliseconds "
        "(`10` is about 100 characters/s; `0` for benchmarks)."
    ),
]
UpstreamURLs = Annotated[
    tuple[str, ...],
    Meta(
        description="openai engine: a replica's base URL, e.g. `http://gpu-1:8000/v1` "
        "(repeatable; comma- or space-separated in the environment, as every list option)."
    ),
]
UpstreamAPIKey = Annotated[
    str, Meta(description="openai engine: sent upstream as `Authorization: Bearer`; never logged.")
]
UpstreamModel = Annotated[
    str, Meta(description="openai engine: the model name sent upstream instead of the client's.")
]
UpstreamConnectTimeout = Annotated[
    Positive, Meta(description="openai engine: seconds to connect to a replica.")
]
UpstreamReadTimeout = Annotated[
    Positive,
    Meta(description="openai engine: longest silence between two upstream chunks, in seconds."),
]
UpstreamMaxConnections = Annotated[
    AtLeastOne,
    Meta(
        description="openai engine: size of the upstream connection pool, per process: the "
        "most requests relayed at once (each answer in progress holds a connection; more "
        "wait, logged as `upstream_pool_wait`)."
    ),
]
UpstreamMaxEventSize = Annotated[
    AtLeastOne,
    Meta(
        description="openai engine: the largest upstream event (chunk) in bytes; a larger one "
        "ends that request (`upstream_protocol_error`) and closes its upstream response."
    ),
]

ENGINE_SETTINGS = (
    "echo_delay_ms",
    "upstream_url",
    "upstream_api_key",
    "upstream_model",
    "upstream_connect_timeout",
    "upstream_read_timeout",
    "upstream_max_connections",
    "upstream_max_event_size",
)
"""Settings that are options of a built-in engine: an engine whose Options declare one
of these names gets its value (from the top level, or the model's entry)."""
