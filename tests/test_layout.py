"""The import graph: what each layer may not import."""

from __future__ import annotations

import subprocess
import sys


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def test_echo_engine_loads_without_aiohttp() -> None:
    """Engines, the channel and the wire types import neither aiohttp nor click."""
    loaded = _modules_after_import("realtime_daemon.engines.echo")
    assert "aiohttp" not in loaded
    assert "click" not in loaded


def test_channel_loads_without_aiohttp() -> None:
    """The request channel is plain asyncio."""
    loaded = _modules_after_import("realtime_daemon.channel")
    assert "aiohttp" not in loaded


def test_session_dialects_and_outbox_load_without_aiohttp() -> None:
    """The session scheduler, the dialects, the events and the outbox are plain asyncio."""
    for module in (
        "realtime_daemon.session",
        "realtime_daemon.dialects.chat",
        "realtime_daemon.dialects.realtime",
        "realtime_daemon.events",
        "realtime_daemon.outbox",
        "realtime_daemon.replay",
    ):
        loaded = _modules_after_import(module)
        assert "aiohttp" not in loaded, module
