"""Engine options: declared by the engine, given in any spelling, refused when wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from click.testing import CliRunner

from realtime_daemon.cli import build_config, main
from realtime_daemon.config import Config
from realtime_daemon.engines.api import read_options
from realtime_daemon.engines.echo import EchoOptions
from realtime_daemon.engines.openai import OpenAIEngine

from .conftest import (
    PATH,
    StartDaemon,
    StartServer,
    content,
    receive_answer,
    receive_envelope,
    request,
    serve_json,
)
from .upstream import Upstream

PROBE = "probe-model"
MODEL = '[[models]]\nname = "m"\nengine = "openai"\n'


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def config_file(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    return build_config(config_file=path)


async def serve_config(serve_engine: StartServer, config: Config) -> Any:
    """A daemon on a real socket with the engine and settings ``config`` names."""
    settings = msgspec.structs.asdict(config)
    del settings["engine"], settings["port"]
    return await serve_engine(engine_name=config.engine, **settings)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--upstream-model", PROBE], {}),
        ([], {"REALTIME_DAEMON_UPSTREAM_MODEL": PROBE}),
        (["--engine-option", f"upstream_model={PROBE}"], {}),
        ([], {"REALTIME_DAEMON_ENGINE_OPTION": f"upstream_model={PROBE}"}),
    ],
    ids=["flag", "variable", "engine-option", "engine-option-variable"],
)
async def test_each_command_line_spelling_reaches_the_openai_engine(
    daemon: StartDaemon, upstream: Upstream, args: list[str], env: dict[str, str]
) -> None:
    """--upstream-model, its variable, --engine-option and its variable all set the model
    the openai engine sends upstream."""
    _, port = await serve_json(
        daemon, "--engine", "openai", "--upstream-url", upstream.url, *args, env=env
    )
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(request("hi", model="client-model"))
        await receive_answer(ws)
    assert upstream.bodies[0]["model"] == PROBE


@pytest.mark.parametrize(
    "text",
    [
        f'upstream_model = "{PROBE}"\n',
        f'[engine_options]\nupstream_model = "{PROBE}"\n',
        f'{MODEL}upstream_model = "{PROBE}"\n',
        f'{MODEL}[models.options]\nupstream_model = "{PROBE}"\n',
    ],
    ids=["top-level", "engine_options", "models-entry", "models-options"],
)
async def test_each_config_file_spelling_reaches_the_openai_engine(
    serve_engine: StartServer, upstream: Upstream, tmp_path: Path, text: str
) -> None:
    """A top-level key, [engine_options], a [[models]] key and [models.options] all set
    the model the openai engine sends upstream."""
    head = f'engine = "openai"\nupstream_url = ["{upstream.url}"]\n'
    client = await serve_config(serve_engine, config_file(tmp_path, head + text))
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("hi", model="m"))
        await receive_answer(ws)
    assert upstream.bodies[0]["model"] == PROBE


async def test_a_read_timeout_given_as_an_engine_option_times_out(
    daemon: StartDaemon, upstream: Upstream
) -> None:
    """--engine-option upstream_read_timeout=0.3 ends a stalled upstream request at 0.3 s."""
    upstream.mode = "stall"
    args = ("--upstream-url", upstream.url, "--engine-option", "upstream_read_timeout=0.3")
    _, port = await serve_json(daemon, "--engine", "openai", *args)
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(request("hello"))
        await receive_envelope(ws)
        error = await receive_envelope(ws)
    assert "timed out: no chunk within 0.3 s" in error["comment"][0]


async def test_an_engine_gets_the_options_it_declares(
    serve_engine: StartServer, tmp_path: Path
) -> None:
    """An engine's Options come from [engine_options], and each model's from its own table."""
    text = (
        'engine = "tests.engines:Tagged"\n[engine_options]\ntag = "hey"\n'
        '[[models]]\nname = "twice"\nengine = "tests.engines:Tagged"\n'
        "[models.options]\nrepeat = 2\n"
        '[[models]]\nname = "other"\nengine = "tests.engines:Tagged"\n'
        '[models.options]\ntag = "ho"\n'
    )
    client = await serve_config(serve_engine, config_file(tmp_path, text))
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request(model="twice"))
        twice = content(await receive_answer(ws))
        await ws.send_json(request(model="other"))
        other = content(await receive_answer(ws))
    assert (twice, other) == ("heyhey", "ho")


def test_a_models_own_options_win_over_the_top_levels(tmp_path: Path) -> None:
    """[models.options] over the model's keys over [engine_options] over the top level."""
    config = config_file(
        tmp_path,
        "upstream_read_timeout = 1.0\nupstream_connect_timeout = 1.0\n"
        "upstream_max_event_size = 1\n"
        "[engine_options]\nupstream_read_timeout = 2.0\nupstream_connect_timeout = 2.0\n"
        f"{MODEL}upstream_read_timeout = 3.0\n"
        "[models.options]\nupstream_read_timeout = 4.0\n",
    )
    options = read_options(OpenAIEngine.Options, config.for_model(config.models[0]))
    assert (
        options.upstream_max_event_size,
        options.upstream_connect_timeout,
        options.upstream_read_timeout,
    ) == (1, 2.0, 4.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--engine-option", "speed=1"],
            "Invalid value for '--engine': engine 'echo': unknown option 'speed'"
            " (known: echo_delay_ms)",
        ),
        (
            ["--engine-option", "echo_delay_ms=fast"],
            "engine 'echo': option 'echo_delay_ms': Expected `float`, got `str`",
        ),
        (["--engine-option", "echo_delay_ms"], "'echo_delay_ms' is not KEY=VALUE"),
        (
            ["--engine", "tests.engines:FailingEngine", "--engine-option", "a=1"],
            "unknown option 'a' (known: none)",
        ),
        (
            ["--engine", "tests.engines:Tagged", "--engine-option", "repeat=0"],
            "option 'repeat': Expected `int` >= 1",
        ),
    ],
    ids=["unknown", "wrong-type", "not-key-value", "engine-without-options", "out-of-range"],
)
def test_a_bad_engine_option_exits_2_naming_it(args: list[str], message: str) -> None:
    """An unknown option or a wrong value exits 2 before binding, with one line naming it."""
    result = invoke("serve", *args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1
    assert message in errors[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[models]]\nname = "m"\nengine = "echo"\n[models.options]\nspeed = 1\n',
            "model 'm': engine 'echo': unknown option 'speed' (known: echo_delay_ms)",
        ),
        (
            '[engine_options]\nspeed = 1\n[[models]]\nname = "m"\nengine = "echo"\n',
            "engine options: unknown option 'speed' (known: echo_delay_ms)",
        ),
    ],
    ids=["models-options", "no-engine-takes-it"],
)
def test_a_bad_engine_option_in_the_file_exits_2_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    """A [models.options] key the engine does not take, or a top-level one no model's
    engine takes, exits 2 naming it."""
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    result = invoke("serve", "--config", str(path))
    assert result.exit_code == 2
    assert message in result.output


def test_the_engine_option_variable_splits_before_each_key() -> None:
    """REALTIME_DAEMON_ENGINE_OPTION separates options by commas or whitespace before a
    KEY=, so that a JSON value may hold both."""
    env = {"REALTIME_DAEMON_ENGINE_OPTION": 'tag="a, b" ,repeat=2\nx=[1, 2]'}
    result = invoke("config", "--engine", "tests.engines:Tagged", env=env)
    assert result.exit_code == 2  # x is no option of Tagged: the split found it
    assert "unknown option 'x'" in result.output
    env["REALTIME_DAEMON_ENGINE_OPTION"] = 'tag="a, b" ,repeat=2'
    result = invoke("config", "--engine", "tests.engines:Tagged", env=env)
    assert tomllib.loads(result.output)["engine_options"] == {"tag": "a, b", "repeat": 2}


def test_engine_options_from_flags_join_the_files(tmp_path: Path) -> None:
    """--engine-option keys override the file's [engine_options] key by key."""
    path = tmp_path / "daemon.toml"
    path.write_text('[engine_options]\ntag = "file"\nrepeat = 3\n')
    args = ("--engine", "tests.engines:Tagged", "--config", str(path))
    result = invoke("config", *args, "--engine-option", 'tag="flag"')
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.output)["engine_options"] == {"tag": "flag", "repeat": 3}


def test_an_api_key_as_an_engine_option_stays_masked(tmp_path: Path) -> None:
    """The API key, as an engine option (top-level or a model's) or a [[models]] key, is
    never shown: not by `config`, not in reprs."""
    path = tmp_path / "daemon.toml"
    path.write_text(
        'upstream_url = ["http://a/v1"]\n'
        f'{MODEL}upstream_api_key = "sk-entry"\n[models.options]\nupstream_api_key = "sk-model"\n'
    )
    result = invoke("config", "--config", str(path), "--engine-option", "upstream_api_key=sk-top")
    assert result.exit_code == 0, result.output
    assert "sk-" not in result.output
    printed = tomllib.loads(result.output)
    assert printed["engine_options"]["upstream_api_key"] == "***"
    assert printed["models"][0]["options"]["upstream_api_key"] == "***"
    assert printed["models"][0]["upstream_api_key"] == "***"
    config = build_config(config_file=path)
    assert "sk-" not in repr(config)
    assert "sk-" not in repr(read_options(OpenAIEngine.Options, config.for_model(config.models[0])))


def test_the_settings_defaults_are_the_engines_options_defaults() -> None:
    """Each setting that is a built-in engine's option has that option's default."""
    defaults = Config()
    for options in (EchoOptions(), OpenAIEngine.Options()):
        for name, value in msgspec.structs.asdict(options).items():
            assert getattr(defaults, name) == value, name
