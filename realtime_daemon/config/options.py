"""The options of ``realtime-daemon serve`` (and ``config``, which takes the same).

Each is a :class:`~.config.Config` field with its default, its environment
variable (``REALTIME_DAEMON_<OPTION>``) and its help; the README's option
table lists them all (a test checks it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from realtime_daemon.config import LOG_FORMATS, LOG_LEVELS, LOOPS, PROTOCOLS, Config

__all__ = ["serve_options"]

F = TypeVar("F", bound=Callable[..., Any])

_DEFAULTS = Config()
_RESERVED_PATHS = ("/health", "/live", "/metrics", "/v1/models")


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


def serve_options(command: F) -> F:
    """Apply every option of ``serve`` to ``command``."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


_OPTIONS: list[Callable[[Any], Any]] = [
    click.option("--host", default=_DEFAULTS.host, help="Address to listen on."),
    click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=_DEFAULTS.port,
        help="TCP port; 0 picks a free one (the server_ready log line shows it).",
    ),
    click.option(
        "--path", default=_DEFAULTS.path, callback=_check_path, help="URL path of the WebSocket."
    ),
    click.option(
        "--engine",
        default=_DEFAULTS.engine,
        help="Engine: a built-in name (echo, openai), an installed one, or module:attr.",
    ),
    click.option(
        "--protocol",
        type=click.Choice(PROTOCOLS),
        default=_DEFAULTS.protocol,
        help="Wire of the WebSocket: auto (the OpenAI Realtime API for upgrades with ?model= or "
        "OpenAI-Beta: realtime=v1, chat-completion frames for the others), chat, openai-realtime.",
    ),
    click.option(
        "--max-conversation-items",
        type=click.IntRange(min=1),
        default=_DEFAULTS.max_conversation_items,
        help="Realtime API: items a session's conversation keeps at most.",
    ),
    click.option(
        "--max-conversation-bytes",
        type=click.IntRange(min=1),
        default=_DEFAULTS.max_conversation_bytes,
        help="Realtime API: JSON bytes of a session's conversation items at most.",
    ),
    click.option(
        "--resume-window",
        type=click.FloatRange(min=0),
        default=_DEFAULTS.resume_window,
        help="Seconds a resumable session outlives its lost connection (0: resume off).",
    ),
    click.option(
        "--resume-buffer",
        type=click.IntRange(min=1),
        default=_DEFAULTS.resume_buffer,
        help="Bytes of envelopes a resumable session keeps to replay on resume.",
    ),
    click.option(
        "--instance-name",
        default=_DEFAULTS.instance_name,
        callback=_check_instance_name,
        help="This instance's name (letters, digits, - and _), leading its resume tokens: "
        "a reverse proxy routes a resume to the instance that holds the session.",
    ),
    click.option(
        "--echo-delay-ms",
        type=click.FloatRange(min=0),
        default=_DEFAULTS.echo_delay_ms,
        help="Echo engine: pause before each character, in milliseconds.",
    ),
    click.option(
        "--request-queue-size",
        type=click.IntRange(min=1),
        default=_DEFAULTS.request_queue_size,
        help="Requests a connection may queue before the daemon stops reading it.",
    ),
    click.option(
        "--max-concurrent-requests",
        type=click.IntRange(min=1),
        default=_DEFAULTS.max_concurrent_requests,
        help="Most answers one session may run at once, when it asks to with session.update "
        "(sessions start answering one request at a time).",
    ),
    click.option(
        "--max-message-size",
        type=click.IntRange(min=1),
        default=_DEFAULTS.max_message_size,
        help="Largest client message in bytes; a larger one closes with 1009.",
    ),
    click.option(
        "--shutdown-timeout",
        type=click.FloatRange(min=0),
        default=_DEFAULTS.shutdown_timeout,
        help="Seconds answers in progress get to finish on SIGTERM or SIGINT.",
    ),
    click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default=_DEFAULTS.log_format,
        help="json lines, console, or auto: console on a terminal, json otherwise.",
    ),
    click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default=_DEFAULTS.log_level,
        help="Lowest level logged.",
    ),
    click.option(
        "--upstream-url",
        type=_URLList(),
        multiple=True,
        help="openai engine: a replica's base URL, e.g. http://gpu-1:8000/v1 (repeatable; "
        "comma- or space-separated in the environment).",
    ),
    click.option(
        "--upstream-api-key",
        default=None,
        help="openai engine: sent upstream as a bearer token; never logged.",
    ),
    click.option(
        "--upstream-model",
        default=None,
        help="openai engine: the model name sent upstream instead of the client's.",
    ),
    click.option(
        "--upstream-connect-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=_DEFAULTS.upstream_connect_timeout,
        help="openai engine: seconds to connect to a replica.",
    ),
    click.option(
        "--upstream-read-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=_DEFAULTS.upstream_read_timeout,
        help="openai engine: longest silence between two upstream chunks, in seconds.",
    ),
    click.option(
        "--upstream-max-connections",
        type=click.IntRange(min=1),
        default=_DEFAULTS.upstream_max_connections,
        help="openai engine: upstream connections per process, the most requests relayed at "
        "once; more wait (logged as upstream_pool_wait).",
    ),
    click.option(
        "--upstream-max-event-size",
        type=click.IntRange(min=1),
        default=_DEFAULTS.upstream_max_event_size,
        help="openai engine: the largest upstream event (chunk) in bytes; a larger one ends "
        "that request with an error envelope and closes its upstream response.",
    ),
    click.option(
        "--auth-token-file",
        type=click.Path(dir_okay=False),
        default=None,
        help="Bearer tokens, one per line; when set, every upgrade needs one. Reloaded on SIGHUP.",
    ),
    click.option(
        "--allowed-origin",
        type=_ListItem(),
        multiple=True,
        help="Browser Origin let in besides the daemon's own (repeatable; '*' for any; "
        "comma- or space-separated in the environment).",
    ),
    click.option(
        "--tls-certfile",
        type=click.Path(dir_okay=False),
        default=None,
        help="PEM certificate (chain): serve wss:// and https://.",
    ),
    click.option(
        "--tls-keyfile",
        type=click.Path(dir_okay=False),
        default=None,
        help="PEM private key of --tls-certfile.",
    ),
    click.option("--unix", default=None, help="Listen on this Unix socket instead of host:port."),
    click.option(
        "--forwarded-allow-ips",
        type=_ListItem(),
        multiple=True,
        help="Proxy address or network whose X-Forwarded-For names the client "
        "(repeatable; '*' for any; comma- or space-separated in the environment).",
    ),
    click.option(
        "--max-connections",
        type=click.IntRange(min=1),
        default=None,
        help="Open WebSockets at most; more get 503. Default: the open-file limit less 64.",
    ),
    click.option(
        "--max-requests-per-second",
        type=click.FloatRange(min=0),
        default=_DEFAULTS.max_requests_per_second,
        help="Requests per second per connection (token bucket); 0 is no limit.",
    ),
    click.option(
        "--heartbeat",
        type=click.FloatRange(min=0),
        default=_DEFAULTS.heartbeat,
        help="Seconds between pings; a peer that does not answer is closed. 0: no pings.",
    ),
    click.option(
        "--idle-timeout",
        type=click.FloatRange(min=0),
        default=_DEFAULTS.idle_timeout,
        help="Close connections with no request and no answer for this long. 0: never.",
    ),
    click.option(
        "--send-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=_DEFAULTS.send_timeout,
        help="Seconds a client may leave its output unread before it is cut off.",
    ),
    click.option(
        "--handshake-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=_DEFAULTS.handshake_timeout,
        help="Seconds a new connection gets to send its request.",
    ),
    click.option(
        "--loop",
        type=click.Choice(LOOPS),
        default=_DEFAULTS.loop,
        help="Event loop: asyncio, or uvloop (installed with the fast extra: "
        "pip install '/path/to/checkout[fast]').",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=_DEFAULTS.workers,
        help="Processes serving the same socket (one per core); /metrics sums them.",
    ),
    click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        envvar="REALTIME_DAEMON_CONFIG",
        help="TOML file of settings (option names with underscores) and [[models]]; "
        "options and environment variables override it.",
    ),
]
