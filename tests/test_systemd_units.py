"""The shipped systemd units: they verify, score well, and document every option."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from realtime_daemon.cli import serve

SYSTEMD = Path(__file__).parent.parent / "systemd"
SERVICE = SYSTEMD / "realtime-daemon.service"
SHIPPED_EXEC = "ExecStart=/opt/realtime-daemon/bin/realtime-daemon serve"

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    analyze is None, reason="systemd-analyze is not installed (Debian package: systemd)"
)


def envvar(param: click.Parameter) -> str:
    """The variable click reads for an option: its own, or the prefix and its name."""
    assert isinstance(param, click.Option) and param.name is not None
    return str(param.envvar) if param.envvar else "REALTIME_DAEMON_" + param.name.upper()


def option_envvars() -> set[str]:
    return {envvar(p) for p in serve.params}


@needs_analyze
def test_service_scores_2_or_lower_offline() -> None:
    """systemd-analyze security --offline=yes rates the service 2.0 or lower."""
    out = subprocess.run(
        [analyze, "security", "--offline=yes", str(SERVICE)],  # type: ignore[list-item]
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Overall exposure level for realtime-daemon.service: (\d+\.\d+)", out)
    assert match, out
    assert float(match.group(1)) <= 2.0


@needs_analyze
def test_units_verify_cleanly(tmp_path: Path) -> None:
    """systemd-analyze verify is clean for both units (ExecStart pointed at this install)."""
    installed = Path(sys.executable).parent / "realtime-daemon"
    assert installed.exists(), "the package's console script is not installed"
    text = SERVICE.read_text()
    assert SHIPPED_EXEC in text
    # The only change: where the binary lives on this machine.
    (tmp_path / SERVICE.name).write_text(text.replace(SHIPPED_EXEC, f"ExecStart={installed} serve"))
    shutil.copy(SYSTEMD / "realtime-daemon.socket", tmp_path)
    result = subprocess.run(
        [  # type: ignore[list-item]
            analyze,
            "verify",
            str(tmp_path / "realtime-daemon.service"),
            str(tmp_path / "realtime-daemon.socket"),
        ],
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_service_stop_timeout_covers_the_drain() -> None:
    """TimeoutStopSec exceeds the default --shutdown-timeout plus the closing handshakes."""
    from realtime_daemon.config import Config
    from realtime_daemon.transport.closes import CLOSE_TIMEOUT

    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", SERVICE.read_text(), re.M).group(1))  # type: ignore[union-attr]
    assert stop > Config().shutdown_timeout + CLOSE_TIMEOUT


def test_env_file_lists_every_option() -> None:
    """The example environment file names every REALTIME_DAEMON_* variable, and no other."""
    listed = set(
        re.findall(
            r"^#?(REALTIME_DAEMON_[A-Z_]+)=", (SYSTEMD / "realtime-daemon.env").read_text(), re.M
        )
    )
    assert listed == option_envvars()


def test_readme_documents_every_option() -> None:
    """The README's option table has a row for every serve option and its variable."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for param in serve.params:
        assert isinstance(param, click.Option)
        flag = param.opts[0]
        assert f"| `{flag}` | `{envvar(param)}` |" in readme, flag
