"""--tts names a text-to-speech engine; its settings, the voice table, and engine_voice."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from realtime_daemon.cli import build_config, main
from realtime_daemon.config import Config
from realtime_daemon.config.speech_settings import engine_voice
from realtime_daemon.engines.speech.espeak import EspeakSynthesizer, FliteSynthesizer
from realtime_daemon.engines.speech.load import (
    SpeechLoadError,
    available_synthesizers,
    load_synthesizer,
)
from realtime_daemon.engines.speech.openai_tts import OpenAISynthesizer

VOICES = {"alloy": "af_bella", "echo": "en-us+m3"}


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["config", *args], env=env)


@pytest.mark.parametrize(
    ("asked", "passthrough", "voice"),
    [
        ("alloy", True, "af_bella"),  # in the table: mapped, whatever the engine
        ("alloy", False, "af_bella"),
        ("af_sky", True, "af_sky"),  # not in it: an upstream gets it as asked
        ("af_sky", False, "en-us"),  # a local engine gets its default
        (None, True, "en-us"),  # none asked: the default
        (None, False, "en-us"),
    ],
)
def test_engine_voice(asked: str | None, passthrough: bool, voice: str) -> None:
    """The table's voice; else the asked one for an upstream, the default for a local engine."""
    assert engine_voice(asked, VOICES, "en-us", passthrough) == voice


def test_without_tts_there_is_no_synthesizer() -> None:
    """No --tts (the default): no synthesizer, and audio output stays refused."""
    assert Config().tts is None
    assert load_synthesizer(Config()) is None


@pytest.mark.parametrize(
    ("name", "settings", "kind", "voice", "passthrough"),
    [
        ("openai", {"tts_url": ("http://127.0.0.1:9/v1",)}, OpenAISynthesizer, "alloy", True),
        ("espeak", {}, EspeakSynthesizer, "en-us", False),
        ("flite", {}, FliteSynthesizer, "slt", False),
    ],
)
def test_built_in_names(
    name: str, settings: dict[str, Any], kind: type, voice: str, passthrough: bool
) -> None:
    """The built-in names build their engines, each with its default voice."""
    engine = load_synthesizer(Config(tts=name, **settings))
    assert isinstance(engine, kind)
    assert (engine.name, engine.voice, engine.passthrough) == (name, voice, passthrough)
    engine = load_synthesizer(Config(tts=name, tts_voice="v1", **settings))
    assert engine is not None and engine.voice == "v1"


def test_available_synthesizers_lists_the_built_ins() -> None:
    """The built-in names come first, in order."""
    assert available_synthesizers()[:3] == ["openai", "espeak", "flite"]


def refuses(config: Config) -> Any:
    raise ValueError("wants a --tts-model")


class NoSynthesize:
    def __init__(self, config: Config) -> None:
        pass


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown tts 'nope': choose one of openai, espeak, flite or give module:attr"),
        ("no_such_module:X", "cannot import tts module 'no_such_module': No module named"),
        ("realtime_daemon.config:Nope", "module 'realtime_daemon.config' has no attribute 'Nope'"),
        (":X", "tts ':X' is not of the form module:attr"),
        ("tests.test_tts_load:refuses", "tts 'tests.test_tts_load:refuses': wants a --tts-model"),
        ("tests.test_tts_load:NoSynthesize", "tts 'tests.test_tts_load:NoSynthesize': NoSynth"),
        ("openai", "tts 'openai': needs at least one --tts-url"),
    ],
)
def test_a_bad_tts_is_one_error(spec: str, message: str) -> None:
    """Each way --tts can be wrong is one SpeechLoadError saying so."""
    with pytest.raises(SpeechLoadError) as caught:
        load_synthesizer(Config(tts=spec))
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--tts", "nope"], {}, "Invalid value for '--tts': unknown tts 'nope'"),
        (["--tts", "openai"], {}, "Invalid value for '--tts': tts 'openai': needs at least one"),
        (
            ["--tts", "espeak"],
            {"PATH": "/nonexistent"},
            "Invalid value for '--tts': tts 'espeak': the espeak-ng program is not installed "
            "(apt-get install espeak-ng)",
        ),
        (["--tts-url", "ftp://x"], {}, "Invalid value for '--tts-url': 'ftp://x' is not an http"),
        (["--tts-timeout", "0"], {}, "Invalid value for '--tts-timeout'"),
        (["--tts-max-concurrent", "0"], {}, "Invalid value for '--tts-max-concurrent'"),
        (["--tts-voice-map", "alloy"], {}, "Invalid value for '--tts-voice-map': 'alloy' is not"),
    ],
)
def test_a_bad_tts_setting_exits_2_with_one_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    """A bad --tts or --tts-* value, or a missing program, exits 2 in one error line."""
    result = invoke("--check", *args, env=env)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output


def test_tts_settings_come_from_the_environment_and_the_key_is_masked() -> None:
    """REALTIME_DAEMON_TTS_* set the options (lists and the voice map split as every list)."""
    env = {
        "REALTIME_DAEMON_TTS": "openai",
        "REALTIME_DAEMON_TTS_URL": "http://a:8880/v1, http://b:8880/v1",
        "REALTIME_DAEMON_TTS_API_KEY": "sk-tts-secret",
        "REALTIME_DAEMON_TTS_VOICE_MAP": "alloy=af_bella, echo=am_adam",
    }
    result = invoke("--tts-model", "kokoro", "--tts-voice-map", "nova=af_nova", env=env)
    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.output)
    assert printed["tts"] == "openai"
    assert printed["tts_url"] == ["http://a:8880/v1", "http://b:8880/v1"]
    assert (printed["tts_model"], printed["tts_timeout"], printed["tts_max_concurrent"]) == (
        "kokoro",
        10.0,
        2,
    )
    assert printed["tts_voices"] == {"nova": "af_nova"}  # the command line's over the env's
    assert printed["tts_api_key"] == "***" and "sk-tts-secret" not in result.output


def test_the_defaults() -> None:
    """Unset, the engine is none, the model tts-1, two pieces at once, 10 s without audio."""
    config = Config()
    assert (config.tts, config.tts_model, config.tts_voice, config.tts_voices) == (
        None,
        "tts-1",
        None,
        {},
    )
    assert (config.tts_max_concurrent, config.tts_timeout) == (2, 10.0)


def test_a_tts_table_in_the_config_file_sets_the_tts_settings(tmp_path: Path) -> None:
    """[tts] (name, url, voice...) and [tts.voices] are the tts_* settings; the printed
    config reads back the same."""
    file = tmp_path / "daemon.toml"
    file.write_text(
        '[tts]\nname = "espeak"\nvoice = "en-gb"\nmax_concurrent = 3\n'
        '[tts.voices]\nalloy = "en-us+f3"\necho = "en-us+m3"\n'
    )
    config = build_config(config_file=file)
    assert (config.tts, config.tts_voice, config.tts_max_concurrent) == ("espeak", "en-gb", 3)
    assert config.tts_voices == {"alloy": "en-us+f3", "echo": "en-us+m3"}
    printed = invoke("--config", str(file))
    assert printed.exit_code == 0, printed.output
    again = tmp_path / "again.toml"
    again.write_text(printed.output)
    assert build_config(config_file=again) == config


def test_the_voice_map_given_merges_over_the_files(tmp_path: Path) -> None:
    """--tts-voice-map entries join the file's [tts.voices], over its keys."""
    file = tmp_path / "daemon.toml"
    file.write_text('[tts.voices]\nalloy = "en-us+f3"\necho = "en-us+m3"\n')
    result = invoke("--config", str(file), "--tts-voice-map", "echo=en-gb")
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.output)["tts_voices"] == {"alloy": "en-us+f3", "echo": "en-gb"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tts_voices = {}\n[tts.voices]\nalloy = "x"\n', "tts_voices is set twice"),
        ("[tts]\nnope = 1\n", "unknown field `tts_nope`"),
        ("[tts.voices]\nalloy = 1\n", "Expected `str`, got `int`"),
    ],
)
def test_a_bad_tts_table_exits_2_naming_it(tmp_path: Path, text: str, message: str) -> None:
    """A key set twice, an unknown [tts] key or a voice that is no string: exit 2, named."""
    file = tmp_path / "daemon.toml"
    file.write_text(text)
    result = invoke("--check", "--config", str(file))
    assert result.exit_code == 2
    assert message in result.output, result.output
