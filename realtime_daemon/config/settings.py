"""The daemon's settings: one frozen object, from the CLI, the environment and a TOML file.

:class:`Config` is a msgspec Struct so that a ``--config`` file decodes into
the very type the command line builds: top-level keys are the ``serve``
option names with underscores, ``[[models]]`` entries are :class:`ModelConfig`.
Unknown keys and wrong types are refused, naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "LOOPS",
    "PROTOCOLS",
    "Config",
    "ConfigFileError",
    "ModelConfig",
    "read_config_file",
    "to_toml",
]

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOOPS = ("asyncio", "uvloop")
PROTOCOLS = ("auto", "chat", "openai-realtime")

_SECRETS = frozenset({"upstream_api_key"})
"""Settings never shown: masked in reprs, logs and ``realtime-daemon config``."""

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]

# The options an engine reads; a [[models]] entry may set any of them.
ENGINE_OPTIONS = (
    "echo_delay_ms",
    "upstream_url",
    "upstream_api_key",
    "upstream_model",
    "upstream_connect_timeout",
    "upstream_read_timeout",
    "upstream_max_connections",
    "upstream_max_event_size",
)


class ModelConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[models]]`` entry: a model name, its engine, and that engine's options.

    Options left out are taken from the top level.
    """

    name: str
    engine: str
    echo_delay_ms: NonNegative | None = None
    upstream_url: tuple[str, ...] | None = None
    upstream_api_key: str | None = None
    upstream_model: str | None = None
    upstream_connect_timeout: Positive | None = None
    upstream_read_timeout: Positive | None = None
    upstream_max_connections: AtLeastOne | None = None
    upstream_max_event_size: AtLeastOne | None = None


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything ``realtime-daemon serve`` can be told.

    Attributes:
        host: address to listen on.
        port: TCP port; 0 picks a free one.
        path: URL path of the WebSocket endpoint.
        engine: built-in or installed engine name, or ``module:attr``.
        protocol: the wire: ``chat``, ``openai-realtime``, or ``auto`` (the
            Realtime API for upgrades with ``?model=`` or ``OpenAI-Beta:
            realtime=v1``, chat frames for the others).
        max_conversation_items: items a Realtime session's conversation keeps.
        max_conversation_bytes: JSON bytes of those items at most.
        resume_window: seconds a resumable session is held after its
            connection is lost; 0 turns resume off.
        resume_buffer: bytes of envelopes a resumable session keeps for replay.
        instance_name: this instance's name, leading its resume tokens
            (``<name>.<random>``) so that a proxy can send a resume to it.
        echo_delay_ms: the echo engine's pause before each character.
        max_concurrent_requests: the most answers a session may ask to run
            at once (``session.update``); sessions start at 1.
        request_queue_size: decoded requests a connection holds before
            the daemon stops reading its socket.
        max_message_size: largest client message in bytes; larger closes 1009.
        shutdown_timeout: seconds answers in progress get to finish on SIGTERM.
        log_format: ``json``, ``console``, or ``auto`` (console on a terminal).
        log_level: lowest level logged.
        upstream_url: the openai engine's replicas, base URLs ending in ``/v1``.
        upstream_api_key: sent upstream as a bearer token; never logged.
        upstream_model: the model name sent upstream instead of the client's.
        upstream_connect_timeout: seconds to connect to a replica.
        upstream_read_timeout: longest silence between two upstream chunks.
        upstream_max_connections: the upstream connection pool's size.
        upstream_max_event_size: the largest upstream SSE event, in bytes.
        models: model routing; empty, every request goes to ``engine``.
        auth_token_file: bearer tokens, one a line; unset, no token is asked.
        allowed_origin: browser origins let in besides the daemon's own.
        tls_certfile: PEM certificate (chain) to serve wss:// and https://.
        tls_keyfile: its private key.
        unix: listen on this Unix socket path instead of host:port.
        forwarded_allow_ips: proxies whose X-Forwarded-For names the client.
        max_connections: open WebSockets at most; None sizes it from the
            open-file limit.
        max_requests_per_second: per-connection request rate; 0 is no limit.
        heartbeat: seconds between pings; 0 sends none.
        idle_timeout: seconds without a request or an answer before a
            connection is closed; 0 never.
        send_timeout: seconds a client may leave output unread past the
            buffer bound before it is cut off.
        handshake_timeout: seconds a new connection gets to send its request.
        loop: the event loop, ``asyncio`` or ``uvloop`` (the ``fast`` extra).
        workers: processes serving the same sockets; above 1, a supervisor
            process forks them (workers.py).
    """

    host: str = "127.0.0.1"
    port: Port = 8000
    path: str = "/v1/realtime"
    engine: str = "echo"
    protocol: str = "auto"
    max_conversation_items: AtLeastOne = 1000
    max_conversation_bytes: AtLeastOne = 2 * 1024 * 1024
    resume_window: NonNegative = 30.0
    resume_buffer: AtLeastOne = 1024 * 1024
    instance_name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{0,32}$")] = ""
    echo_delay_ms: NonNegative = 10.0
    request_queue_size: AtLeastOne = 64
    max_concurrent_requests: AtLeastOne = 4
    max_message_size: AtLeastOne = 1024 * 1024
    shutdown_timeout: NonNegative = 10.0
    log_format: str = "auto"
    log_level: str = "info"
    upstream_url: tuple[str, ...] = ()
    upstream_api_key: str | None = msgspec.field(default=None)
    upstream_model: str | None = None
    upstream_connect_timeout: Positive = 5.0
    upstream_read_timeout: Positive = 60.0
    upstream_max_connections: AtLeastOne = 1000
    upstream_max_event_size: AtLeastOne = 4 * 1024 * 1024
    models: tuple[ModelConfig, ...] = ()
    auth_token_file: str | None = None
    allowed_origin: tuple[str, ...] = ()
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    unix: str | None = None
    forwarded_allow_ips: tuple[str, ...] = ()
    max_connections: AtLeastOne | None = None
    max_requests_per_second: NonNegative = 0.0
    heartbeat: NonNegative = 20.0
    idle_timeout: NonNegative = 0.0
    send_timeout: Positive = 30.0
    handshake_timeout: Positive = 10.0
    loop: str = "asyncio"
    workers: AtLeastOne = 1

    def __repr__(self) -> str:
        # Keep the API key out of reprs, tracebacks and logs.
        fields = (
            f"{name}={'***' if name in _SECRETS and value else value!r}"
            for name, value in msgspec.structs.asdict(self).items()
        )
        return f"Config({', '.join(fields)})"

    def for_model(self, model: ModelConfig) -> Config:
        """The settings a model's engine gets: these, with the model's own options."""
        overrides = {
            name: getattr(model, name)
            for name in ENGINE_OPTIONS
            if getattr(model, name) is not None
        }
        return msgspec.structs.replace(self, engine=model.engine, models=(), **overrides)


class ConfigFileError(Exception):
    """A ``--config`` file that cannot be used; the message names the file and the key."""


def read_config_file(path: Path) -> dict[str, object]:
    """The settings a TOML file sets, checked against :class:`Config`.

    Returns:
        the keys the file sets, with their decoded values.

    Raises:
        ConfigFileError: unreadable file, invalid TOML, unknown key, wrong type.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"{path}: {exc.strerror}") from None
    try:
        raw = msgspec.toml.decode(data)
        # The keys it sets, but typed and checked like the whole settings.
        config = msgspec.convert(raw, Config)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigFileError(f"{path}: {exc}") from None
    return {name: getattr(config, name) for name in raw}


def to_toml(config: Config) -> str:
    """``config`` as a ``--config`` file would say it: every setting, secrets masked.

    Settings that are not set are written as comments; ``[[models]]``
    entries list only the options they set.
    """
    lines = [_toml_line(n, v) for n, v in msgspec.structs.asdict(config).items() if n != "models"]
    for model in config.models:
        lines += ["", "[[models]]"]
        fields = msgspec.structs.asdict(model).items()
        lines += [_toml_line(n, v) for n, v in fields if v is not None]
    return "\n".join(lines) + "\n"


def _toml_line(name: str, value: object) -> str:
    if value is None:
        return f"# {name} = (not set)"
    if name in _SECRETS:
        value = "***"
    # JSON's strings, numbers, booleans and arrays of them are TOML's too.
    return f"{name} = {msgspec.json.encode(value).decode()}"
