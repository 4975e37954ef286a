"""Model routing and the --config file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from realtime_daemon.cli import build_config, main
from realtime_daemon.config import Config, ConfigFileError, ModelConfig

from .conftest import PATH, StartServer, content, receive_answer, receive_envelope, request
from .upstream import Upstream, started


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async for running in started(1):
        yield running[0]


@pytest.fixture
async def routed(serve_engine: StartServer, upstream: Upstream) -> Any:
    """A daemon routing "fast-echo" to the echo engine and "llama" to an upstream."""
    models = (
        ModelConfig(name="fast-echo", engine="echo", echo_delay_ms=0),
        ModelConfig(name="llama", engine="openai", upstream_url=(upstream.url,)),
    )
    return await serve_engine(models=models, echo_delay_ms=500)


async def test_first_request_picks_the_engine(routed: Any, upstream: Upstream) -> None:
    """A session's first model picks its engine: echo for one, the upstream for the other."""
    async with routed.ws_connect(PATH) as ws:
        await ws.send_json(request("fast", model="fast-echo"))
        assert content(await receive_answer(ws)) == "fast"
    async with routed.ws_connect(PATH) as ws:
        await ws.send_json(request("slow model", model="llama"))
        answer = [await receive_envelope(ws) for _ in range(4)]
        assert [e["data"] for e in answer] == upstream.sent[0]


async def test_model_options_override_the_top_level(routed: Any) -> None:
    """A model's own echo_delay_ms (0) wins over the top-level 500 ms: the answer is quick."""
    async with routed.ws_connect(PATH) as ws:
        await ws.send_json(request("x" * 20, model="fast-echo"))
        assert content(await receive_answer(ws)) == "x" * 20  # 2 s timeout: 10 s at 500 ms


async def test_each_request_goes_to_its_own_models_engine(routed: Any, upstream: Upstream) -> None:
    """Requests of one session naming different models are each answered by their engine."""
    async with routed.ws_connect(PATH) as ws:
        await ws.send_json(request("one", model="fast-echo"))
        await ws.send_json(request("two words", model="llama"))
        await ws.send_json(request("three", model="fast-echo"))
        assert content(await receive_answer(ws)) == "one"
        relayed = [await receive_envelope(ws) for _ in range(4)]
        assert [e["data"] for e in relayed] == upstream.sent[0]
        answer = await receive_answer(ws)
        assert content(answer) == "three"
        assert answer[0]["data"]["id"].endswith("-3")


async def test_unknown_model_lists_the_available_ones(routed: Any) -> None:
    """An unknown model gets an error envelope listing the models; a valid request then works."""
    async with routed.ws_connect(PATH) as ws:
        await ws.send_json(request("?", model="gpt-17"))
        refused = await receive_envelope(ws)
        assert refused == {
            "id": "1",
            "event": "error",
            "comment": ["unknown model 'gpt-17': available models: fast-echo, llama"],
        }
        await ws.send_json(request("ok", model="fast-echo"))
        assert content(await receive_answer(ws)) == "ok"


async def test_models_endpoint_lists_configured_models(routed: Any) -> None:
    """GET /v1/models lists the configured models in OpenAI's format."""
    async with routed.get("/v1/models") as response:
        assert response.status == 200
        body = await response.json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"]) for m in body["data"]] == [
        ("fast-echo", "model"),
        ("llama", "model"),
    ]


async def test_single_engine_takes_any_model(client: Any) -> None:
    """Without models, every request goes to the one engine whatever its model."""
    async with client.ws_connect(PATH) as ws:
        for model in ("a", "b"):
            await ws.send_json(request(model, model=model))
            assert content(await receive_answer(ws)) == model
    async with client.get("/v1/models") as response:
        assert (await response.json())["data"] == []


CONFIG = """
port = 9000
echo_delay_ms = 0
upstream_url = ["http://a:8000/v1"]

[[models]]
name = "fast-echo"
engine = "echo"
echo_delay_ms = 0

[[models]]
name = "llama"
engine = "openai"
upstream_url = ["http://gpu-1:8000/v1", "http://gpu-2:8000/v1"]
"""


def test_config_file_fills_the_settings(tmp_path: Path) -> None:
    """The issue's example file decodes into the same Config the CLI builds."""
    path = tmp_path / "daemon.toml"
    path.write_text(CONFIG)
    config = build_config({}, frozenset(), path)
    assert (config.port, config.echo_delay_ms, config.upstream_url) == (
        9000,
        0.0,
        ("http://a:8000/v1",),
    )
    assert [m.name for m in config.models] == ["fast-echo", "llama"]
    assert config.for_model(config.models[1]).upstream_url == (
        "http://gpu-1:8000/v1",
        "http://gpu-2:8000/v1",
    )
    assert config.for_model(config.models[1]).engine == "openai"


def test_options_and_variables_override_the_file(tmp_path: Path) -> None:
    """Given options win over the file; options left at their default do not."""
    path = tmp_path / "daemon.toml"
    path.write_text(CONFIG)
    options = {"port": 7000, "echo_delay_ms": Config().echo_delay_ms}
    config = build_config(options, frozenset({"port"}), path)
    assert (config.port, config.echo_delay_ms) == (7000, 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 9000", "Object contains unknown field `prot`"),
        ('port = "high"', "Expected `int`, got `str` - at `$.port`"),
        ("port = 70000", "Expected `int` <= 65535 - at `$.port`"),
        (
            '[[models]]\nname = "x"\nengine = "echo"\nspeed = 1',
            "unknown field `speed` - at `$.models[0]`",
        ),
        ("port = ", "Invalid value"),
    ],
)
def test_bad_config_file_exits_2_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    """An unknown key or a wrong type in the file exits 2, naming the file and the key."""
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=r"daemon\.toml"):
        build_config({}, frozenset(), path)
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert f"Invalid value for '--config': {path}: " in result.output
    assert message in result.output


def test_openai_engine_without_upstream_exits_2() -> None:
    """--engine openai with no --upstream-url exits 2 before binding."""
    result = CliRunner().invoke(main, ["serve", "--engine", "openai"])
    assert result.exit_code == 2
    assert "Invalid value for '--engine': engine 'openai': needs at least one --upstream-url" in (
        result.output
    )


@pytest.mark.parametrize("separator", [",", " ", ", ", "\n"])
def test_upstream_urls_from_the_environment_are_comma_or_space_separated(
    separator: str,
) -> None:
    """REALTIME_DAEMON_UPSTREAM_URL takes several URLs separated by commas or whitespace."""
    env = {"REALTIME_DAEMON_UPSTREAM_URL": f"http://a:1/v1{separator}ftp://b/v1"}
    result = CliRunner().invoke(main, ["serve", "--engine", "openai"], env=env)
    assert result.exit_code == 2
    assert "'ftp://b/v1' is not an http:// or https:// URL" in result.output
