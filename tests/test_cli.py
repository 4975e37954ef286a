"""The command line: parsing and errors in-process, serving as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from click.testing import CliRunner

from realtime_daemon import __version__
from realtime_daemon.cli import build_config, main
from realtime_daemon.config import Config
from realtime_daemon.engines.load import EngineLoadError, load_engine

from .conftest import StartDaemon, content, receive_answer, request

ROOT = Path(__file__).parent.parent


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def test_the_help_shows_each_commands_summary_whole() -> None:
    """The top-level --help lists every command with its summary, none cut short."""
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    commands = result.output.partition("Commands:")[2]
    assert "..." not in commands
    assert "bench   Load a daemon and report latency, throughput and failures.\n" in commands


def test_version_prints_the_version() -> None:
    """--version prints the package version."""
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output == f"realtime-daemon, version {__version__}\n"


def test_build_config_defaults_match_the_documented_ones() -> None:
    """With no options, serve listens on 127.0.0.1:8000/v1/realtime with the echo engine."""
    config = build_config()
    assert config == Config()
    assert (config.host, config.port, config.path, config.engine) == (
        "127.0.0.1",
        8000,
        "/v1/realtime",
        "echo",
    )
    assert (config.echo_delay_ms, config.request_queue_size, config.max_message_size) == (
        10.0,
        64,
        1024 * 1024,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "abc"], "Invalid value for '--port': 'abc' is not a valid integer"),
        (["--port", "70000"], "Invalid value for '--port': 70000 is not in the range"),
        (["--echo-delay-ms", "-1"], "Invalid value for '--echo-delay-ms'"),
        (["--request-queue-size", "0"], "Invalid value for '--request-queue-size'"),
        (["--log-format", "xml"], "Invalid value for '--log-format'"),
        (["--path", "v1"], "Invalid value for '--path': 'v1' must start with '/'"),
        (["--path", "/health"], "is served by the daemon itself"),
        (["--engine", "nope"], "Invalid value for '--engine': unknown engine 'nope'"),
        (["--engine", "no_such_module:Engine"], "cannot import engine module 'no_such_module'"),
        (["--engine", "realtime_daemon.config:Nope"], "has no attribute 'Nope'"),
        (["--engine", "realtime_daemon.config:LOG_LEVELS"], "is not callable"),
        (["--no-such-option"], "No such option '--no-such-option'"),
    ],
)
def test_bad_option_exits_2_with_one_error_line(args: list[str], message: str) -> None:
    """A wrong option value exits 2 before anything binds, with click's error line."""
    result = invoke("serve", *args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1
    assert message in errors[0]
    assert "Traceback" not in result.output


def test_environment_variables_set_options() -> None:
    """REALTIME_DAEMON_<OPTION> is read like the option (a bad value proves it is read)."""
    result = invoke("serve", env={"REALTIME_DAEMON_PORT": "not-a-port"})
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in result.output


def test_module_attr_names_an_engine_factory() -> None:
    """module:attr resolves to the attribute, ready to be called with the settings."""
    from .engines import GatedEngine

    assert load_engine("tests.engines:GatedEngine") is GatedEngine


def test_module_attr_is_found_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--engine module:attr imports modules from the working directory."""
    (tmp_path / "cwd_engines.py").write_text("class Present:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    result = invoke("serve", "--engine", "cwd_engines:Missing")
    assert result.exit_code == 2
    assert "module 'cwd_engines' has no attribute 'Missing'" in result.output


@pytest.mark.parametrize("command", ["chat", "bench"])
def test_clients_leave_the_import_path_alone(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chat and bench load no engines: the working directory is not put on sys.path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert str(tmp_path) not in sys.path


def test_entry_point_group_adds_engine_names(tmp_path: Path) -> None:
    """An installed package can add an engine name through realtime_daemon.engines."""
    dist = tmp_path / "fancy_engines-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fancy-engines\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[realtime_daemon.engines]\nfancy = realtime_daemon.engines.echo:EchoEngine\n"
    )
    code = (
        "from realtime_daemon.engines.load import load_engine, available_engines\n"
        "print(load_engine('fancy').__name__, available_engines())"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "EchoEngine ['echo', 'openai', 'fancy']"


def test_unknown_engine_error_lists_the_choices() -> None:
    """An unknown engine name says which names exist."""
    with pytest.raises(EngineLoadError, match="choose one of echo, openai"):
        load_engine("nope")


async def test_serve_subprocess_streams_and_stops_on_sigint(daemon: StartDaemon) -> None:
    """serve --port 0 logs where it listens, answers over a WebSocket, exits 0 on SIGINT."""
    process = await daemon(
        "serve",
        "--port",
        "0",
        "--log-format",
        "json",
        env={"REALTIME_DAEMON_PATH": "/from-env", "REALTIME_DAEMON_ECHO_DELAY_MS": "0"},
    )
    ready = await process.wait_for_event("server_ready")
    assert ready["host"] == "127.0.0.1"
    assert ready["port"] > 0
    assert (ready["path"], ready["engine"]) == ("/from-env", "echo")
    url = f"ws://127.0.0.1:{ready['port']}/from-env"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(request("héllo 🙂"))
        assert content(await receive_answer(ws)) == "héllo 🙂"
    closed = await process.wait_for_event("connection_closed")
    assert (closed["code"], closed["requests"], closed["chunks"]) == (1000, 1, 8)
    process.proc.send_signal(signal.SIGINT)
    code, rest = await process.finish()
    assert code == 0
    assert "Traceback" not in rest
    assert json.loads(rest.splitlines()[-1])["event"] == "server_stopped"


async def test_busy_address_exits_1_naming_host_and_port(daemon: StartDaemon) -> None:
    """An address already in use exits 1 with one line naming host:port, no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = await daemon("serve", "--port", str(port), "--log-format", "json")
        code, rest = await process.finish()
    assert code == 1
    assert rest == f"Error: cannot listen on 127.0.0.1:{port}: address already in use\n"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "REALTIME_DAEMON_ALLOWED_ORIGIN",
            "https://ok.example, https://app.example/page",
            "Invalid value for '--allowed-origin': 'https://app.example/page' is not an origin",
        ),
        (
            "REALTIME_DAEMON_ALLOWED_ORIGIN",
            "https://ok.example https://bad.example:http",
            "'https://bad.example:http' has an invalid port",
        ),
        (
            "REALTIME_DAEMON_FORWARDED_ALLOW_IPS",
            "10.0.0.0/8,not-an-address",
            "Invalid value for '--forwarded-allow-ips': 'not-an-address' is not an address",
        ),
    ],
)
def test_list_options_split_alike_and_every_value_is_checked(
    variable: str, value: str, message: str
) -> None:
    """Every list variable takes commas or whitespace; a bad value exits 2 naming it."""
    result = invoke("serve", env={variable: value})
    assert result.exit_code == 2
    assert message in result.output


def test_list_values_from_the_config_file_are_checked(tmp_path: Path) -> None:
    """A bad origin in the --config file exits 2 before binding, naming it."""
    config = tmp_path / "daemon.toml"
    config.write_text('allowed_origin = ["https://ok.example", "ftp://files.example"]\n')
    result = invoke("serve", "--config", str(config))
    assert result.exit_code == 2
    assert "'ftp://files.example' is not an origin" in result.output


def test_config_prints_the_merged_settings_as_toml(tmp_path: Path) -> None:
    """`config` merges file, environment and flags as serve does; secrets are masked."""
    file = tmp_path / "daemon.toml"
    file.write_text('port = 9000\nheartbeat = 5.0\n[[models]]\nname = "m"\nengine = "echo"\n')
    env = {"REALTIME_DAEMON_HEARTBEAT": "7", "REALTIME_DAEMON_UPSTREAM_API_KEY": "sk-secret"}
    result = invoke("config", "--config", str(file), "--idle-timeout", "3", env=env)
    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.output)
    assert (printed["port"], printed["heartbeat"], printed["idle_timeout"]) == (9000, 7.0, 3.0)
    assert printed["upstream_api_key"] == "***"
    assert "sk-secret" not in result.output
    assert printed["models"] == [{"name": "m", "engine": "echo"}]


def test_config_check_exits_0_or_2_without_binding() -> None:
    """`config --check` says whether serve would start: 0, or 2 naming the problem."""
    good = invoke("config", "--check", "--port", "1")  # port 1 needs root: nothing binds
    assert (good.exit_code, good.output.strip()) == (0, "configuration ok")
    bad = invoke("config", "--check", "--engine", "openai")
    assert bad.exit_code == 2
    assert "needs at least one --upstream-url" in bad.output


def test_example_config_file_sets_every_option_and_loads() -> None:
    """examples/daemon.toml names every setting, and serve would start with it."""
    example = ROOT / "examples" / "daemon.toml"
    text = example.read_text()
    for field in msgspec.structs.fields(Config):
        line = r"^\[\[models\]\]$" if field.name == "models" else rf"^(# )?{field.name} = "
        assert re.search(line, text, re.M), field.name
    result = invoke("config", "--check", "--config", str(example))
    assert result.exit_code == 0, result.output
    config = build_config(config_file=example)
    assert [m.name for m in config.models] == ["fast-echo", "llama"]


def test_the_readmes_config_commands_run_from_the_checkout() -> None:
    """Each `realtime-daemon config` line of the README exits 0 from the checkout's root."""
    lines = [
        line.partition("#")[0].split()
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("realtime-daemon config ")
    ]
    assert len(lines) == 2
    for argv in lines:
        result = subprocess.run(
            [sys.executable, "-m", "realtime_daemon", *argv[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("REALTIME_DAEMON_")},
        )
        assert result.returncode == 0, (argv, result.stderr)
