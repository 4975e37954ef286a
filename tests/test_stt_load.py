"""--stt names a speech-to-text engine: built in, installed, or module:attr; a bad one exits 2."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from realtime_daemon.audio.speech import TranscriptionFailed, TranscriptionRequest
from realtime_daemon.cli import main
from realtime_daemon.config import Config
from realtime_daemon.engines.speech.load import SpeechLoadError, load_transcriber
from realtime_daemon.engines.speech.openai import OpenAITranscriber
from realtime_daemon.engines.speech.pocketsphinx import PocketsphinxTranscriber

ROOT = Path(__file__).parent.parent


class NoTranscribe:
    """A factory's product without transcribe()."""

    def __init__(self, config: Config) -> None:
        pass


def refuses(config: Config) -> Any:
    raise ValueError("wants a --stt-model")


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["config", *args], env=env)


def test_without_stt_there_is_no_transcriber() -> None:
    """No --stt (the default): no transcriber, and audio stays refused."""
    assert Config().stt is None
    assert load_transcriber(Config()) is None


@pytest.mark.parametrize(
    ("name", "settings", "kind"),
    [
        ("openai", {"stt_url": ("http://127.0.0.1:9/v1",)}, OpenAITranscriber),
        ("pocketsphinx", {}, PocketsphinxTranscriber),
    ],
)
def test_built_in_names(name: str, settings: dict[str, Any], kind: type) -> None:
    """The built-in names build their engines, named as given."""
    engine = load_transcriber(Config(stt=name, **settings))
    assert isinstance(engine, kind)
    assert engine.name == name


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))


async def test_module_attr_names_a_plugin(examples: None) -> None:
    """module:attr builds a plugin: examples/clock_stt.py streams its words and fails by code."""
    engine = load_transcriber(Config(stt="clock_stt:ClockSTT"))
    assert engine is not None
    pieces: list[str] = []
    transcript = await engine.transcribe(TranscriptionRequest(bytes(48000), 24000), pieces.append)
    assert (transcript.text, transcript.seconds) == ("1.0 seconds of audio", 1.0)
    assert "".join(pieces) == transcript.text and len(pieces) == 4
    with pytest.raises(TranscriptionFailed) as caught:
        await engine.transcribe(TranscriptionRequest(bytes(100), 24000), pieces.append)
    assert caught.value.code == "invalid_answer"
    await asyncio.wait_for(engine.aclose(), 1)


def test_the_docs_show_the_example_plugin_as_it_is() -> None:
    """docs/engines.md's speech-to-text listing is examples/clock_stt.py, to the letter."""
    docs = (ROOT / "docs" / "engines.md").read_text()
    listing = re.search(r"```python\n# examples/clock_stt\.py\n(.*?)```", docs, re.S)
    assert listing, "docs/engines.md has no examples/clock_stt.py listing"
    assert listing.group(1) == (ROOT / "examples" / "clock_stt.py").read_text()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown stt 'nope': choose one of openai, pocketsphinx or give module:attr"),
        ("no_such_module:X", "cannot import stt module 'no_such_module': No module named"),
        ("realtime_daemon.config:Nope", "module 'realtime_daemon.config' has no attribute 'Nope'"),
        ("realtime_daemon.config:LOG_LEVELS", "stt 'realtime_daemon.config:LOG_LEVELS' is not"),
        (":X", "stt ':X' is not of the form module:attr"),
        ("tests.test_stt_load:refuses", "stt 'tests.test_stt_load:refuses': wants a --stt-model"),
        ("tests.test_stt_load:NoTranscribe", "stt 'tests.test_stt_load:NoTranscribe': NoTra"),
        ("openai", "stt 'openai': needs at least one --stt-url"),
    ],
)
def test_a_bad_stt_is_one_error(spec: str, message: str) -> None:
    """Each way --stt can be wrong is one SpeechLoadError saying so."""
    with pytest.raises(SpeechLoadError) as caught:
        load_transcriber(Config(stt=spec))
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stt", "nope"], "Invalid value for '--stt': unknown stt 'nope'"),
        (["--stt", "openai"], "Invalid value for '--stt': stt 'openai': needs at least one"),
        (["--stt-url", "ftp://x"], "Invalid value for '--stt-url': 'ftp://x' is not an http"),
        (["--stt-timeout", "0"], "Invalid value for '--stt-timeout'"),
    ],
)
def test_a_bad_stt_setting_exits_2_with_one_line(args: list[str], message: str) -> None:
    """A bad --stt or --stt-* value exits 2 before anything binds, in one error line."""
    result = invoke("--check", *args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output


def test_stt_settings_come_from_the_environment_and_the_key_is_masked() -> None:
    """REALTIME_DAEMON_STT_* set the options (URLs split as every list); the key shows ***."""
    env = {
        "REALTIME_DAEMON_STT": "openai",
        "REALTIME_DAEMON_STT_URL": "http://a:8000/v1, http://b:8000/v1",
        "REALTIME_DAEMON_STT_API_KEY": "sk-stt-secret",
    }
    result = invoke("--stt-model", "large-v3", env=env)
    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.output)
    assert printed["stt"] == "openai"
    assert printed["stt_url"] == ["http://a:8000/v1", "http://b:8000/v1"]
    assert (printed["stt_model"], printed["stt_timeout"]) == ("large-v3", 30.0)
    assert printed["stt_api_key"] == "***"
    assert "sk-stt-secret" not in result.output


def test_entry_point_group_adds_stt_names(tmp_path: Path) -> None:
    """An installed package can add a name through realtime_daemon.transcribers."""
    dist = tmp_path / "fancy_stt-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fancy-stt\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[realtime_daemon.transcribers]\nclock = clock_stt:ClockSTT\n"
    )
    code = (
        "from realtime_daemon.config import Config\n"
        "from realtime_daemon.engines.speech.load import load_transcriber, available_transcribers\n"
        "print(type(load_transcriber(Config(stt='clock'))).__name__, available_transcribers())"
    )
    path = os.pathsep.join([str(tmp_path), str(ROOT / "examples")])
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": path},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == "ClockSTT ['openai', 'pocketsphinx', 'clock']"
