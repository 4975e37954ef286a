"""The ``realtime-daemon`` command line."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from . import __version__
from .config import LOG_FORMATS, LOG_LEVELS, Config
from .engines.load import EngineLoadError, load_engine
from .logs import configure_logging
from .serve import BindError, ForcedStop, run

__all__ = ["build_config", "main"]

_DEFAULTS = Config()
_RESERVED_PATHS = ("/health", "/live", "/metrics")


def build_config(**options: Any) -> Config:
    """The settings for ``serve``'s parsed options (names as the Config's)."""
    return Config(**options)


def _check_engine(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        load_engine(value)
    except EngineLoadError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


def _check_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith("/"):
        raise click.BadParameter(f"{value!r} must start with '/'", ctx=ctx, param=param)
    if value in _RESERVED_PATHS:
        raise click.BadParameter(f"{value!r} is served by the daemon itself", ctx=ctx, param=param)
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


@main.command(
    context_settings={"auto_envvar_prefix": "REALTIME_DAEMON", "show_default": True}
)
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
    callback=_check_engine,
    help="Engine: a built-in name (echo), an installed one, or module:attr.",
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
def serve(**options: Any) -> None:
    """Serve the WebSocket endpoint until SIGTERM or SIGINT.

    Every option can also be set as REALTIME_DAEMON_<OPTION>, e.g.
    REALTIME_DAEMON_PORT=9000.
    """
    config = build_config(**options)
    configure_logging(config.log_format, config.log_level.lower())
    try:
        run(config)
    except (BindError, ForcedStop) as exc:
        raise click.ClickException(str(exc)) from None
