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


async def _frames(ws: object, count: int) -> list[dict[str, object]]:
    frames = []
    async with asyncio.timeout(2):
        while len(frames) < count:
            frames.append(json.loads((await ws.receive()).data))  # type: ignore[attr-defined]
    return frames


async def test_a_dialects_work_runs_off_it_and_what_follows_is_handled(
    aiohttp_client: MakeClient,
) -> None:
    """A frame may ask the session for work (Work): its outcome comes back to the dialect,
    whose follow-up request is answered; a job that raises gives the dialect a
    server_error and the session goes on; one frame may make several events, in order."""
    app = build_app(Config(port=0, echo_delay_ms=0), dialects=(*DIALECTS, SHOUT))
    client = await aiohttp_client(app)
    async with client.ws_connect("/v1/shout") as ws:
        await ws.send_str("later ok")
        assert await _frames(ws, 4) == [
            {"n": 1, "note": "looked up"},
            {"n": 2, "text": "O"},
            {"n": 3, "text": "K"},
            {"n": 4, "done": "stop"},
        ]
        await ws.send_str("later fail")
        assert await _frames(ws, 1) == [{"n": 5, "note": "server_error: the lookup broke"}]
        await ws.send_str("twice hi")
        assert await _frames(ws, 2) == [{"n": 6, "note": "hi"}, {"n": 7, "note": "hi"}]


def test_protocol_choices_are_the_registrys_dialects() -> None:
    """--protocol offers auto and each dialect the registry serves at --path (the
    settings sit below the dialects, so the choices are a constant checked here)."""
    from realtime_daemon.config import PROTOCOLS
    from realtime_daemon.dialects.registry import AUTO

    main = Config().path
    served = (spec.name for spec in DIALECTS if spec.path(Config()) == main)
    assert sorted(PROTOCOLS) == sorted((AUTO, *served))
