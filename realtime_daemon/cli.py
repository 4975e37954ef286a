"""The ``realtime-daemon`` command line."""

from __future__ import annotations

import importlib.util
import os
import re
import ssl
import sys
from pathlib import Path
from typing import Any

import click
import msgspec
from click.core import ParameterSource

from . import __version__
from .admission import TokenFileError, Tokens, check_proxy, normalize_origin
from .bench import bench
from .chat import chat
from .config import (
    LOG_FORMATS,
    LOG_LEVELS,
    LOOPS,
    PROTOCOLS,
    Config,
    ConfigFileError,
    read_config_file,
    to_toml,
)
from .engines.load import EngineLoadError, build_routes
from .engines.routes import Routes
from .logs import configure_logging
from .serve import BindError, ForcedStop, run, tls_context
from .workers import WorkerFailed, supervise

__all__ = ["build_config", "main"]

_DEFAULTS = Config()
_RESERVED_PATHS = ("/health", "/live", "/metrics", "/v1/models")


def build_config(
    options: dict[str, Any] | None = None,
    given: frozenset[str] = frozenset(),
    config_file: Path | None = None,
) -> Config:
    """The settings for ``serve``: its options over a config file over the defaults.

    Args:
        options: parsed option values, named as the Config's fields.
        given: the options set on the command line or in the environment;
            only these override the file.
        config_file: a TOML file of settings (``--config``).

    Raises:
        ConfigFileError: the file cannot be read or does not fit the settings.
    """
    options = options or {}
    settings: dict[str, Any] = read_config_file(config_file) if config_file else {}
    for name, value in options.items():
        if name in given or name not in settings:
            settings[name] = value
    return msgspec.structs.replace(_DEFAULTS, **settings)


class _ListItem(click.ParamType[str]):
    """One value of a repeatable option; several in one environment variable are
    separated by commas or whitespace, the same for every list option."""

    name = "TEXT"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [item for item in re.split(r"[,\s]+", rv) if item]


class _URLList(_ListItem):
    """An http(s) URL."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        url = str(value).strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            self.fail(f"{value!r} is not an http:// or https:// URL", param, ctx)
        return url


def _check_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith("/"):
        raise click.BadParameter(f"{value!r} must start with '/'", ctx=ctx, param=param)
    if value in _RESERVED_PATHS:
        raise click.BadParameter(f"{value!r} is served by the daemon itself", ctx=ctx, param=param)
    return value


def _check_instance_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{0,32}", value):
        raise click.BadParameter(
            f"{value!r}: up to 32 letters, digits, '-' and '_'", ctx=ctx, param=param
        )
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="realtime-daemon")
def main() -> None:
    """A WebSocket gateway that streams LLM chat completions (/v1/realtime)."""
    # A console script's sys.path starts with its bin directory; put the
    # working directory first, as `python -m` does, so `--engine mod:attr`
    # finds modules beside the user.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


@main.command(context_settings={"auto_envvar_prefix": "REALTIME_DAEMON", "show_default": True})
@click.option("--host", default=_DEFAULTS.host, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=_DEFAULTS.port,
    help="TCP port; 0 picks a free one (the server_ready log line shows it).",
)
@click.option(
    "--path", default=_DEFAULTS.path, callback=_check_path, help="URL path of the WebSocket."
)
@click.option(
    "--engine",
    default=_DEFAULTS.engine,
    help="Engine: a built-in name (echo, openai), an installed one, or module:attr.",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default=_DEFAULTS.protocol,
    help="Wire of the WebSocket: auto (the OpenAI Realtime API for upgrades with ?model= or "
    "OpenAI-Beta: realtime=v1, chat-completion frames for the others), chat, openai-realtime.",
)
@click.option(
    "--max-conversation-items",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_conversation_items,
    help="Realtime API: items a session's conversation keeps at most.",
)
@click.option(
    "--max-conversation-bytes",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_conversation_bytes,
    help="Realtime API: JSON bytes of a session's conversation items at most.",
)
@click.option(
    "--resume-window",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.resume_window,
    help="Seconds a resumable session outlives its lost connection (0: resume off).",
)
@click.option(
    "--resume-buffer",
    type=click.IntRange(min=1),
    default=_DEFAULTS.resume_buffer,
    help="Bytes of envelopes a resumable session keeps to replay on resume.",
)
@click.option(
    "--instance-name",
    default=_DEFAULTS.instance_name,
    callback=_check_instance_name,
    help="This instance's name (letters, digits, - and _), leading its resume tokens: "
    "a reverse proxy routes a resume to the instance that holds the session.",
)
@click.option(
    "--echo-delay-ms",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.echo_delay_ms,
    help="Echo engine: pause before each character, in milliseconds.",
)
@click.option(
    "--request-queue-size",
    type=click.IntRange(min=1),
    default=_DEFAULTS.request_queue_size,
    help="Requests a connection may queue before the daemon stops reading it.",
)
@click.option(
    "--max-concurrent-requests",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_concurrent_requests,
    help="Most answers one session may run at once, when it asks to with session.update "
    "(sessions start answering one request at a time).",
)
@click.option(
    "--max-message-size",
    type=click.IntRange(min=1),
    default=_DEFAULTS.max_message_size,
    help="Largest client message in bytes; a larger one closes with 1009.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.shutdown_timeout,
    help="Seconds answers in progress get to finish on SIGTERM or SIGINT.",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default=_DEFAULTS.log_format,
    help="json lines, console, or auto: console on a terminal, json otherwise.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=_DEFAULTS.log_level,
    help="Lowest level logged.",
)
@click.option(
    "--upstream-url",
    type=_URLList(),
    multiple=True,
    help="openai engine: a replica's base URL, e.g. http://gpu-1:8000/v1 (repeatable; "
    "comma- or space-separated in the environment).",
)
@click.option(
    "--upstream-api-key",
    default=None,
    help="openai engine: sent upstream as a bearer token; never logged.",
)
@click.option(
    "--upstream-model",
    default=None,
    help="openai engine: the model name sent upstream instead of the client's.",
)
@click.option(
    "--upstream-connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS.upstream_connect_timeout,
    help="openai engine: seconds to connect to a replica.",
)
@click.option(
    "--upstream-read-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS.upstream_read_timeout,
    help="openai engine: longest silence between two upstream chunks, in seconds.",
)
@click.option(
    "--upstream-max-connections",
    type=click.IntRange(min=1),
    default=_DEFAULTS.upstream_max_connections,
    help="openai engine: upstream connections per process, the most requests relayed at "
    "once; more wait (logged as upstream_pool_wait).",
)
@click.option(
    "--upstream-max-event-size",
    type=click.IntRange(min=1),
    default=_DEFAULTS.upstream_max_event_size,
    help="openai engine: the largest upstream event (chunk) in bytes; a larger one ends "
    "that request with an error envelope and closes its upstream response.",
)
@click.option(
    "--auth-token-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Bearer tokens, one per line; when set, every upgrade needs one. Reloaded on SIGHUP.",
)
@click.option(
    "--allowed-origin",
    type=_ListItem(),
    multiple=True,
    help="Browser Origin let in besides the daemon's own (repeatable; '*' for any; "
    "comma- or space-separated in the environment).",
)
@click.option(
    "--tls-certfile",
    type=click.Path(dir_okay=False),
    default=None,
    help="PEM certificate (chain): serve wss:// and https://.",
)
@click.option(
    "--tls-keyfile",
    type=click.Path(dir_okay=False),
    default=None,
    help="PEM private key of --tls-certfile.",
)
@click.option("--unix", default=None, help="Listen on this Unix socket instead of host:port.")
@click.option(
    "--forwarded-allow-ips",
    type=_ListItem(),
    multiple=True,
    help="Proxy address or network whose X-Forwarded-For names the client "
    "(repeatable; '*' for any; comma- or space-separated in the environment).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help="Open WebSockets at most; more get 503. Default: the open-file limit less 64.",
)
@click.option(
    "--max-requests-per-second",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.max_requests_per_second,
    help="Requests per second per connection (token bucket); 0 is no limit.",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.heartbeat,
    help="Seconds between pings; a peer that does not answer is closed. 0: no pings.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.idle_timeout,
    help="Close connections with no request and no answer for this long. 0: never.",
)
@click.option(
    "--send-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS.send_timeout,
    help="Seconds a client may leave its output unread before it is cut off.",
)
@click.option(
    "--handshake-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS.handshake_timeout,
    help="Seconds a new connection gets to send its request.",
)
@click.option(
    "--loop",
    type=click.Choice(LOOPS),
    default=_DEFAULTS.loop,
    help="Event loop: asyncio, or uvloop (installed with the fast extra: "
    "pip install '/path/to/checkout[fast]').",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=_DEFAULTS.workers,
    help="Processes serving the same socket (one per core); /metrics sums them.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    envvar="REALTIME_DAEMON_CONFIG",
    help="TOML file of settings (option names with underscores) and [[models]]; "
    "options and environment variables override it.",
)
@click.pass_context
def serve(ctx: click.Context, /, config_file: Path | None, **options: Any) -> None:
    """Serve the WebSocket endpoint until SIGTERM or SIGINT.

    Every option can also be set as REALTIME_DAEMON_<OPTION>, e.g.
    REALTIME_DAEMON_PORT=9000.
    """
    config, routes = _settings(ctx, config_file, options)
    configure_logging(config.log_format, config.log_level.lower())
    try:
        if config.workers > 1:
            supervise(config, routes)
        else:
            run(config, routes)
    except (BindError, ForcedStop, WorkerFailed) as exc:
        raise click.ClickException(str(exc)) from None


def _settings(
    ctx: click.Context, config_file: Path | None, options: dict[str, Any]
) -> tuple[Config, Routes]:
    """The settings and routes the options, environment and file make, checked as serve
    checks them before it binds; a bad one exits 2 naming it."""
    for name in ("upstream_url", "allowed_origin", "forwarded_allow_ips"):
        options[name] = tuple(options[name])
    given = frozenset(
        name
        for name in options
        if ctx.get_parameter_source(name)
        in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    )
    try:
        config = build_config(options, given, config_file)
    except ConfigFileError as exc:
        raise click.BadParameter(str(exc), param_hint="'--config'") from None
    try:
        routes = build_routes(config)
    except EngineLoadError as exc:
        raise click.BadParameter(str(exc), param_hint="'--engine'") from None
    _preflight(config)
    return config, routes


@main.command(
    "config",
    context_settings={"auto_envvar_prefix": "REALTIME_DAEMON", "show_default": True},
    params=list(serve.params),
)
@click.option(
    "--check", is_flag=True, help="Only check the settings: exit 0 if serve would start, else 2."
)
@click.pass_context
def config_command(
    ctx: click.Context, /, config_file: Path | None, check: bool, **options: Any
) -> None:
    """Print the effective settings as TOML (a --config file), secrets masked.

    Takes every option of serve, and reads the same environment variables
    and --config file, merged as serve merges them; binds nothing.
    """
    config, _ = _settings(ctx, config_file, options)
    if check:
        click.echo("configuration ok", err=True)
    else:
        click.echo(to_toml(config), nl=False)


def _preflight(config: Config) -> None:
    """Check lists, the token file and the certificate now: a bad one exits 2 before binding."""
    for origin in config.allowed_origin:
        if origin != "*":
            try:
                normalize_origin(origin)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="'--allowed-origin'") from None
    for entry in config.forwarded_allow_ips:
        try:
            check_proxy(entry)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--forwarded-allow-ips'") from None
    if config.auth_token_file:
        try:
            Tokens(config.auth_token_file)
        except TokenFileError as exc:
            raise click.BadParameter(str(exc), param_hint="'--auth-token-file'") from None
    try:
        tls_context(config)
    except (ValueError, OSError, ssl.SSLError) as exc:
        raise click.BadParameter(str(exc), param_hint="'--tls-certfile'") from None
    if config.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise click.BadParameter(
            "uvloop is not installed: install the fast extra"
            " (pip install '/path/to/checkout[fast]')",
            param_hint="'--loop'",
        )


main.add_command(chat)
main.add_command(bench)
