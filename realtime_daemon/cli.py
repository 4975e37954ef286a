"""The ``realtime-daemon`` command line."""

from __future__ import annotations

import importlib.util
import os
import ssl
import sys
from pathlib import Path
from typing import Any

import click
import msgspec
from click.core import ParameterSource

from realtime_daemon import __version__
from realtime_daemon.config import (
    Config,
    ConfigFileError,
    read_config_file,
    to_toml,
)
from realtime_daemon.config.options import serve_options
from realtime_daemon.engines.load import EngineLoadError, build_routes
from realtime_daemon.engines.routes import Routes
from realtime_daemon.engines.speech.load import SpeechLoadError, load_synthesizer, load_transcriber
from realtime_daemon.server.admission import check_proxy, normalize_origin
from realtime_daemon.server.client_secrets import SecretKeyError, read_secret_key
from realtime_daemon.server.keys import KeyFileError, read_keys, read_token_file
from realtime_daemon.server.logs import configure_logging
from realtime_daemon.server.serve import ForcedStop, run
from realtime_daemon.server.sockets import BindError, tls_context
from realtime_daemon.server.workers import WorkerFailed, supervise
from realtime_daemon.tools.bench import bench
from realtime_daemon.tools.chat import chat

__all__ = ["build_config", "main"]

_DEFAULTS = Config()


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
            if isinstance(value, dict) and isinstance(settings.get(name), dict):
                value = {**settings[name], **value}  # a table: its given keys over the file's
            settings[name] = value
    return msgspec.structs.replace(_DEFAULTS, **settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="realtime-daemon")
def main() -> None:
    """A WebSocket gateway that streams LLM chat completions (/v1/realtime)."""


@main.command(context_settings={"auto_envvar_prefix": "REALTIME_DAEMON", "show_default": True})
@serve_options
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
    for name in ("upstream_url", "stt_url", "tts_url", "allowed_origin", "forwarded_allow_ips"):
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
    # A console script's sys.path starts with its bin directory; put the
    # working directory first, as `python -m` does, so `--engine mod:attr`
    # finds modules beside the user (for serve and config only: chat and
    # bench load no engines).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        routes = build_routes(config)
    except EngineLoadError as exc:
        raise click.BadParameter(str(exc), param_hint="'--engine'") from None
    try:
        load_transcriber(config)  # builds nothing that needs closing
    except SpeechLoadError as exc:
        raise click.BadParameter(str(exc), param_hint="'--stt'") from None
    try:
        load_synthesizer(config)  # builds nothing that needs closing
    except SpeechLoadError as exc:
        raise click.BadParameter(str(exc), param_hint="'--tts'") from None
    _preflight(config)
    return config, routes


@main.command(
    "config",
    short_help="Print the effective settings as TOML, secrets masked.",
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
            read_token_file(config.auth_token_file)
        except KeyFileError as exc:
            raise click.BadParameter(str(exc), param_hint="'--auth-token-file'") from None
    if config.keys_file:
        try:
            read_keys(config.keys_file)
        except KeyFileError as exc:
            raise click.BadParameter(str(exc), param_hint="'--keys-file'") from None
    if config.secret_key_file:
        try:
            read_secret_key(config.secret_key_file)
        except SecretKeyError as exc:
            raise click.BadParameter(str(exc), param_hint="'--secret-key-file'") from None
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
