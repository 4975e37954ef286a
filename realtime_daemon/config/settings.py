"""The daemon's settings: one frozen object, from the CLI, the environment and a TOML file.

:class:`Config` is a msgspec Struct so that a ``--config`` file decodes into
the very type the command line builds: top-level keys are the ``serve``
option names with underscores, ``[[models]]`` entries are :class:`ModelConfig`.
Unknown keys and wrong types are refused, naming the key (:mod:`.toml` reads and
writes those files).

Each setting is described once, by its field's ``msgspec.Meta(description=...)``;
the ``serve`` options (:mod:`.options`) and the README's table are made from it.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

import msgspec
from msgspec import Meta

from realtime_daemon.config.engine_settings import (
    ENGINE_SETTINGS,
    AtLeastOne,
    EchoDelayMs,
    NonNegative,
    Port,
    Positive,
    UpstreamAPIKey,
    UpstreamConnectTimeout,
    UpstreamMaxConnections,
    UpstreamMaxEventSize,
    UpstreamModel,
    UpstreamReadTimeout,
    UpstreamURLs,
)
from realtime_daemon.config.key_settings import (
    KeysFile,
    MaxClientSecretTTL,
    RedisURL,
    SecretKeyFile,
)
from realtime_daemon.config.speech_settings import (
    SttAPIKey,
    SttModel,
    SttName,
    SttTimeout,
    SttURLs,
    TtsAPIKey,
    TtsMaxConcurrent,
    TtsModel,
    TtsName,
    TtsTimeout,
    TtsURLs,
    TtsVoice,
    TtsVoices,
)

__all__ = [
    "ENDPOINTS",
    "ENGINE_SETTINGS",
    "INSTANCE_NAME",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "LOOPS",
    "PROTOCOLS",
    "Config",
    "ModelConfig",
    "is_secret",
    "masked",
    "masked_repr",
]

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOOPS = ("asyncio", "uvloop")
PROTOCOLS = ("auto", "chat", "openai-realtime")

_SECRETS = frozenset({"upstream_api_key", "stt_api_key", "tts_api_key"})
_SECRET_ENDINGS = ("api_key", "token", "secret", "password")
INSTANCE_NAME = r"^[A-Za-z0-9_-]{0,32}$"
"""What ``--instance-name`` may be: it leads resume tokens, so it stays short and plain."""


class Endpoints(NamedTuple):
    """The paths the daemon serves itself (``server.app`` routes them); ``--path`` may be
    none of them."""

    health: str = "/health"
    live: str = "/live"
    metrics: str = "/metrics"
    models: str = "/v1/models"


ENDPOINTS = Endpoints()


def is_secret(name: str) -> bool:
    """Whether the setting or engine option ``name`` is never shown (masked as ``***``)."""
    return name in _SECRETS or name.endswith(_SECRET_ENDINGS)


def masked(name: str, value: object) -> object:
    """``value`` as it may be shown: ``***`` for a secret, tables masked key by key."""
    if isinstance(value, dict):
        return {k: masked(k, v) for k, v in value.items()}
    return "***" if value and is_secret(name) else value


def masked_repr(struct: msgspec.Struct) -> str:
    """``repr(struct)`` with its secrets masked: for reprs, tracebacks and logs."""
    fields = (f"{n}={masked(n, v)!r}" for n, v in msgspec.structs.asdict(struct).items())
    return f"{type(struct).__name__}({', '.join(fields)})"


class ModelConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[models]]`` entry: a model name, its engine, and that engine's options.

    The options are its ``[models.options]`` table; those of the built-in engines may
    also be keys of the entry itself, as in earlier versions. Options left out are
    taken from the top level.
    """

    name: str
    engine: str
    echo_delay_ms: EchoDelayMs | None = None
    upstream_url: UpstreamURLs | None = None
    upstream_api_key: UpstreamAPIKey | None = None
    upstream_model: UpstreamModel | None = None
    upstream_connect_timeout: UpstreamConnectTimeout | None = None
    upstream_read_timeout: UpstreamReadTimeout | None = None
    upstream_max_connections: UpstreamMaxConnections | None = None
    upstream_max_event_size: UpstreamMaxEventSize | None = None
    audio_input: Annotated[
        Literal["transcribe", "passthrough"] | None,
        Meta(
            description="Realtime voice: what the model gets of a user's audio: its "
            "transcript (`transcribe`, the default), or the audio itself as an "
            "`input_audio` part (WAV) for audio-capable chat models (`passthrough`)."
        ),
    ] = None
    options: dict[str, object] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return masked_repr(self)


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything ``realtime-daemon serve`` can be told.

    Each field's description is its ``msgspec.Meta(description=...)``: the ``--help``
    of its option and the README's option table are made from it (``.options``).
    """

    host: Annotated[str, Meta(description="Address to listen on.")] = "127.0.0.1"
    port: Annotated[
        Port,
        Meta(description="TCP port; `0` picks a free one (the `server_ready` log line shows it)."),
    ] = 8000
    path: Annotated[str, Meta(description="URL path of the WebSocket.")] = "/v1/realtime"
    responses_path: Annotated[
        str, Meta(description="URL path of the OpenAI Responses API's WebSocket.")
    ] = "/v1/responses"
    engine: Annotated[
        str,
        Meta(
            description="Engine: a built-in name (`echo`, `openai`), an installed one, "
            "or `module:attr`."
        ),
    ] = "echo"
    protocol: Annotated[
        str,
        Meta(
            description="Wire of the WebSocket: `auto` (the OpenAI Realtime API for upgrades "
            "with `?model=` or `OpenAI-Beta: realtime=v1`, chat-completion frames for the "
            "others), `chat`, `openai-realtime`."
        ),
    ] = "auto"
    max_conversation_items: Annotated[
        AtLeastOne,
        Meta(
            description="Realtime and Responses APIs: items a session's conversation (a "
            "response's chain) keeps at most; a client item past it is refused "
            "(`conversation_full`)."
        ),
    ] = 1000
    max_conversation_bytes: Annotated[
        AtLeastOne,
        Meta(
            description="Realtime API: JSON bytes of a session's conversation items at "
            "most (the same refusal)."
        ),
    ] = 2 * 1024 * 1024
    redis_url: RedisURL = None
    max_session_duration: Annotated[
        Positive,
        Meta(
            description="Seconds a connection may last; then it is told so "
            "(`websocket_connection_limit_reached`, `session_expired`) and closed with 1001."
        ),
    ] = 3600.0
    max_input_audio_seconds: Annotated[
        float,
        Meta(
            gt=0,
            description="Realtime API: seconds of uncommitted input audio a session's "
            "buffer holds at most; an append past it is refused whole "
            "(`input_audio_buffer_full`).",
        ),
    ] = 120.0
    resume_window: Annotated[
        NonNegative,
        Meta(
            description="Seconds a resumable session outlives its lost connection; `0` "
            "turns resume off."
        ),
    ] = 30.0
    resume_buffer: Annotated[
        AtLeastOne,
        Meta(
            description="Bytes of envelopes a resumable session keeps to replay on resume; "
            "held without a connection, a session past it pauses its answers."
        ),
    ] = 1024 * 1024
    instance_name: Annotated[
        str,
        Meta(
            pattern=INSTANCE_NAME,
            description="This instance's name (up to 32 letters, digits, `-` and `_`), "
            "leading its resume tokens (`<name>.<random>`): a reverse proxy routes a "
            "resume to the instance that holds the session (docs/deploy.md).",
        ),
    ] = ""
    echo_delay_ms: EchoDelayMs = 10.0
    request_queue_size: Annotated[
        AtLeastOne,
        Meta(description="Requests a connection may queue before the daemon stops reading it."),
    ] = 64
    max_concurrent_requests: Annotated[
        AtLeastOne,
        Meta(
            description="Most answers one session may run at once, when it asks to with "
            "`session.update` (sessions start answering one request at a time)."
        ),
    ] = 4
    max_message_size: Annotated[
        AtLeastOne,
        Meta(description="Largest client message in bytes; a larger one closes with 1009."),
    ] = 1024 * 1024
    shutdown_timeout: Annotated[
        NonNegative,
        Meta(description="Seconds answers in progress get to finish on SIGTERM or SIGINT."),
    ] = 10.0
    log_format: Annotated[
        str,
        Meta(
            description="`json` lines, `console`, or `auto`: console on a terminal, json otherwise."
        ),
    ] = "auto"
    log_level: Annotated[str, Meta(description="Lowest level logged.")] = "info"
    upstream_url: UpstreamURLs = ()
    upstream_api_key: UpstreamAPIKey | None = None
    upstream_model: UpstreamModel | None = None
    upstream_connect_timeout: UpstreamConnectTimeout = 5.0
    upstream_read_timeout: UpstreamReadTimeout = 60.0
    upstream_max_connections: UpstreamMaxConnections = 1000
    upstream_max_event_size: UpstreamMaxEventSize = 4 * 1024 * 1024
    engine_options: Annotated[
        dict[str, object],
        Meta(
            description="An option of the engine, `KEY=VALUE`, VALUE read as JSON if it "
            "parses, else as a string (repeatable; comma- or space-separated in the "
            "environment; `[engine_options]` in the config file). With `[[models]]`, "
            "each model's engine takes those it declares."
        ),
    ] = msgspec.field(default_factory=dict)
    models: Annotated[
        tuple[ModelConfig, ...],
        Meta(description="Model routing; empty, every request goes to `engine`."),
    ] = ()
    stt: SttName | None = None
    stt_url: SttURLs = ()
    stt_model: SttModel | None = None
    stt_api_key: SttAPIKey | None = None
    stt_timeout: SttTimeout = 30.0
    tts: TtsName | None = None
    tts_url: TtsURLs = ()
    tts_model: TtsModel = "tts-1"
    tts_api_key: TtsAPIKey | None = None
    tts_voice: TtsVoice | None = None
    tts_voices: TtsVoices = msgspec.field(default_factory=dict)
    tts_max_concurrent: TtsMaxConcurrent = 2
    tts_timeout: TtsTimeout = 10.0
    auth_token_file: Annotated[
        str | None,
        Meta(
            description="Bearer tokens, one per line; when set, every upgrade needs one. "
            "Reloaded on SIGHUP."
        ),
    ] = None
    keys_file: KeysFile = None
    secret_key_file: SecretKeyFile = None
    max_client_secret_ttl: MaxClientSecretTTL = 7200
    allowed_origin: Annotated[
        tuple[str, ...],
        Meta(
            description="Browser Origin (`scheme://host[:port]`) let in besides the daemon's "
            "own (repeatable; '*' for any; comma- or space-separated in the environment); "
            "checked at startup."
        ),
    ] = ()
    tls_certfile: Annotated[
        str | None, Meta(description="PEM certificate (chain): serve `wss://` and `https://`.")
    ] = None
    tls_keyfile: Annotated[str | None, Meta(description="PEM private key of `--tls-certfile`.")] = (
        None
    )
    unix: Annotated[
        str | None, Meta(description="Listen on this Unix socket instead of host:port.")
    ] = None
    forwarded_allow_ips: Annotated[
        tuple[str, ...],
        Meta(
            description="Proxy address or network (`10.0.0.0/8`) whose `X-Forwarded-For` "
            "names the client in logs (repeatable; '*' for any; comma- or space-separated "
            "in the environment); checked at startup."
        ),
    ] = ()
    max_connections: Annotated[
        AtLeastOne | None,
        Meta(
            description="Open WebSockets at most; more get 503 with `Retry-After`. "
            "Default: the open-file limit less 64."
        ),
    ] = None
    max_requests_per_second: Annotated[
        NonNegative,
        Meta(
            description="Requests per second per connection (a token bucket, bursts of "
            "the rate); `0` is no limit."
        ),
    ] = 0.0
    heartbeat: Annotated[
        NonNegative,
        Meta(
            description="Seconds between pings; a peer that does not answer within half of "
            "it is closed. `0`: no pings."
        ),
    ] = 20.0
    idle_timeout: Annotated[
        NonNegative,
        Meta(
            description="Close connections with no request and no answer in progress for "
            "this long (1000 `idle timeout`). `0`: never."
        ),
    ] = 0.0
    send_timeout: Annotated[
        Positive,
        Meta(
            description="Seconds a client may leave its output unread (past a 64 KiB "
            "buffer) before it is cut off."
        ),
    ] = 30.0
    handshake_timeout: Annotated[
        Positive,
        Meta(description="Seconds a new connection gets to send its whole HTTP request."),
    ] = 10.0
    loop: Annotated[
        str,
        Meta(
            description="Event loop: `asyncio`, or `uvloop` (installed with the fast extra: "
            "`pip install '/path/to/checkout[fast]'`)."
        ),
    ] = "asyncio"
    workers: Annotated[
        AtLeastOne,
        Meta(description="Processes serving the same socket (one per core); `/metrics` sums them."),
    ] = 1

    def __repr__(self) -> str:
        # Keep the API key out of reprs, tracebacks and logs.
        return masked_repr(self)

    def for_model(self, model: ModelConfig) -> Config:
        """The settings a model's engine gets: these, with the model's own on top.

        The model's engine settings (``echo_delay_ms``, ``upstream_*``) replace the
        top level's, and its ``[models.options]`` join ``engine_options``: an engine's
        options are the top level's, then the model's, each table over the settings.
        """
        overrides = {
            name: getattr(model, name)
            for name in ENGINE_SETTINGS
            if getattr(model, name) is not None
        }
        # The model's own settings win over the top level's, in either spelling.
        shared = {k: v for k, v in self.engine_options.items() if k not in overrides}
        options = {**shared, **model.options}
        return msgspec.structs.replace(
            self, engine=model.engine, models=(), engine_options=options, **overrides
        )
