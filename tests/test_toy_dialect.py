"""A new dialect is a new module plus a registry entry (tests/toy_dialect.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from realtime_daemon.config import Config
from realtime_daemon.dialects.registry import DIALECTS
from realtime_daemon.server.app import build_app

from .test_metrics import requests, scrape
from .toy_dialect import SHOUT

MakeClient = Callable[..., Awaitable[TestClient]]


async def test_a_registry_entry_serves_a_new_wire_at_its_own_path(
    aiohttp_client: MakeClient,
) -> None:
    """The toy dialect, added to the registry, answers at /v1/shout with the echo
    engine's text in its own frames, numbered by the daemon, and is counted by name;
    /v1/realtime still speaks chat frames."""
    app = build_app(Config(port=0, echo_delay_ms=0), dialects=(*DIALECTS, SHOUT))
    client = await aiohttp_client(app)
    async with client.ws_connect("/v1/shout") as ws:
        await ws.send_str("hey")
        frames = []
        async with asyncio.timeout(2):
            while not frames or "done" not in frames[-1]:
                frames.append(json.loads((await ws.receive()).data))
    assert frames == [
        {"n": 1, "text": "H"},
        {"n": 2, "text": "E"},
        {"n": 3, "text": "Y"},
        {"n": 4, "done": "stop"},
    ]
    async with client.ws_connect("/v1/realtime") as ws:
        await ws.send_json({"model": "m", "messages": [{"role": "user", "content": "x"}]})
        async with asyncio.timeout(2):
            envelope = json.loads((await ws.receive()).data)
    assert envelope["data"]["choices"][0]["delta"]["content"] == "x"
    samples = await scrape(client)
    assert requests(samples, "completed", dialect="shout") == 1


def test_protocol_choices_are_the_registrys_dialects() -> None:
    """--protocol offers auto and each dialect the registry serves at --path (the
    settings sit below the dialects, so the choices are a constant checked here)."""
    from realtime_daemon.config import PROTOCOLS
    from realtime_daemon.dialects.registry import AUTO

    assert sorted(PROTOCOLS) == sorted((AUTO, *(spec.name for spec in DIALECTS)))
