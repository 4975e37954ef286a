"""How ``chat`` and ``bench`` read the daemon's address (tools/client.py's daemon_url)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from realtime_daemon.cli import main
from realtime_daemon.tools.client import daemon_url, is_address


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("ws://h:1/v1/realtime", "ws://h:1/v1/realtime"),
        ("http://127.0.0.1:9200", "ws://127.0.0.1:9200/v1/realtime"),
        ("https://gw.example/", "wss://gw.example/v1/realtime"),
        ("https://gw.example/rt", "wss://gw.example/rt"),
        ("127.0.0.1:9200", "ws://127.0.0.1:9200/v1/realtime"),
        ("[::1]:9200", "ws://[::1]:9200/v1/realtime"),
        ("http://h:1?model=m", "ws://h:1/v1/realtime?model=m"),
    ],
)
def test_an_address_becomes_the_websocket_url(given: str, url: str) -> None:
    """http is ws, https is wss, HOST:PORT is ws://HOST:PORT; no path gets /v1/realtime."""
    assert daemon_url(given) == url


@pytest.mark.parametrize("text", ["hello", "note: 5", "a:b", "two words:80", "see http://h:1"])
def test_a_prompt_is_not_an_address(text: str) -> None:
    """Only a URL of the four schemes, or exactly HOST:PORT, is taken as the address."""
    assert not is_address(text)


def test_the_environment_gives_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an address, REALTIME_DAEMON_URL is read the same way."""
    monkeypatch.setenv("REALTIME_DAEMON_URL", "http://gw:9")
    assert daemon_url(None) == "ws://gw:9/v1/realtime"


def test_a_bad_environment_address_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A REALTIME_DAEMON_URL that is no address is refused, naming the variable."""
    monkeypatch.setenv("REALTIME_DAEMON_URL", "ftp://gw")
    with pytest.raises(click.BadParameter, match="'ftp://gw' is not a ws://"):
        daemon_url(None)


@pytest.mark.parametrize("command", ["chat", "bench"])
def test_the_help_says_what_the_address_may_be(command: str) -> None:
    """Each command's help names HOST:PORT, http:// and REALTIME_DAEMON_URL."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert all(word in result.output for word in ("HOST:PORT", "http://", "REALTIME_DAEMON_URL"))
