"""Named keys: who may connect, which models each may use, and its quotas."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI
from structlog.testing import capture_logs

from realtime_daemon.config import ModelConfig
from realtime_daemon.server.state import STATE

from .conftest import (
    PATH,
    Daemon,
    Start,
    StartDaemon,
    StartServer,
    content,
    receive_answer,
    receive_close,
    receive_envelope,
    receive_until,
    request,
    serve_json,
)
from .fake_stt import FakeSTT
from .fake_tts import MS_PER_CHARACTER, fake_ttss
from .test_metrics import scrape
from .test_realtime_sdk import answer, events_until, sdk, user
from .test_voice_in import TURN, listening
from .upstream import Upstream
from .voice import append_all, stt
from .voice import until as voice_until

__all__ = ["stt"]  # the fixture, used by name

MODELS = tuple(ModelConfig(name=name, engine="echo") for name in ("m1", "m2", "m3"))

KEYS = f"""
[[keys]]
name = "alpha"
token = "alpha-token"
models = ["m1", "m2"]
max_sessions = 2
requests_per_minute = 3

[[keys]]
name = "beta"
sha256 = "{hashlib.sha256(b"beta-token").hexdigest()}"
models = ["m2"]
tokens_per_minute = 10

[[keys]]
name = "gamma"
token = "gamma-token"
disabled = true

[[keys]]
name = "delta"
token = "delta-token"
requests_per_minute = 100
tokens_per_minute = 8
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(KEYS)
    return path


@pytest.fixture
async def keyed(serve_engine: StartServer, keys_file: Path) -> Daemon:
    """A daemon with three models and the three keys."""
    return await serve_engine(engine=None, models=MODELS, keys_file=str(keys_file))


class Clock:
    """A clock the test moves: the quotas' per-minute windows follow it."""

    def __init__(self, now: float = 6_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def until(condition: Callable[[], bool]) -> None:
    """Wait, bounded, for the server side to catch up with what the client saw (a
    slot freed, a log line written: nothing the client is told of)."""
    async with asyncio.timeout(2):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_only_enabled_keys_get_in(keyed: Daemon) -> None:
    """A key's token (or the token of its sha256) opens a WebSocket; others get 401."""
    for token in ("alpha-token", "beta-token"):
        async with keyed.ws_connect(PATH, headers=bearer(token)) as ws:
            await ws.send_json(request("hi", model="m2"))
            assert content(await receive_answer(ws)) == "hi"
    for token in ("gamma-token", "nope", "alpha-token2"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await keyed.ws_connect(PATH, headers=bearer(token))
        assert caught.value.status == 401


async def test_models_lists_what_the_key_may_use(keyed: Daemon) -> None:
    """/v1/models lists, for each key, only its models; without a key, 401."""
    for token, expected in (("alpha-token", ["m1", "m2"]), ("beta-token", ["m2"])):
        async with keyed.get("/v1/models", headers=bearer(token)) as response:
            assert response.status == 200
            assert [m["id"] for m in (await response.json())["data"]] == expected
    async with keyed.get("/v1/models") as response:
        assert response.status == 401


async def test_a_model_named_in_the_url_is_refused_before_the_upgrade(keyed: Daemon) -> None:
    """?model= of a model the key may not use gets 403 with a reason, no WebSocket."""
    async with keyed.get(f"{PATH}?model=m3", headers=bearer("beta-token")) as response:
        assert response.status == 426  # a plain GET: not an upgrade at all
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await keyed.ws_connect(f"{PATH}?model=m1", headers=bearer("beta-token"))
    assert caught.value.status == 403


async def test_a_model_named_in_band_is_refused_and_the_session_goes_on(keyed: Daemon) -> None:
    """Chat frames: a request or session.update for another model is refused in band."""
    async with keyed.ws_connect(PATH, headers=bearer("beta-token")) as ws:
        await ws.send_json(request("no", model="m1", request_id="r1"))
        refused = await receive_envelope(ws)
        assert refused["event"] == "error"
        assert refused["error"]["code"] == "model_not_allowed"
        assert refused["comment"] == ["key 'beta' may not use model 'm1'"]
        await ws.send_json({"type": "session.update", "session": {"model": "m3"}})
        assert (await receive_envelope(ws))["error"]["code"] == "model_not_allowed"
        await ws.send_json(request("yes", model="m2"))
        assert content(await receive_answer(ws)) == "yes"


async def test_realtime_session_update_for_another_model_is_refused(keyed: Daemon) -> None:
    """The Realtime dialect: an ``error`` event with the code; the session keeps its model."""
    async with keyed.ws_connect(f"{PATH}?model=m2", headers=bearer("beta-token")) as ws:
        await receive_until(ws, "session.created", key="type")
        await ws.send_json({"type": "session.update", "session": {"model": "m1"}})
        error = (await receive_envelope(ws))["error"]
        assert (error["code"], error["param"]) == ("model_not_allowed", "session.model")
        await ws.send_json({"type": "session.update", "session": {"instructions": "x"}})
        updated = await receive_envelope(ws)
        assert updated["session"]["model"] == "m2"


async def test_sessions_over_the_quota_get_429_and_a_freed_slot_is_usable(keyed: Daemon) -> None:
    """max_sessions: the third session of alpha gets 429 with Retry-After until one ends."""
    quotas = keyed.app[STATE].quotas
    first = await keyed.ws_connect(PATH, headers=bearer("alpha-token"))
    second = await keyed.ws_connect(PATH, headers=bearer("alpha-token"))
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await keyed.ws_connect(PATH, headers=bearer("alpha-token"))
    assert caught.value.status == 429
    assert caught.value.headers is not None and caught.value.headers["Retry-After"] == "1"
    other = await keyed.ws_connect(PATH, headers=bearer("beta-token"))  # its own budget
    await first.close()
    await until(lambda: quotas.sessions("alpha") == 1)
    third = await keyed.ws_connect(PATH, headers=bearer("alpha-token"))
    for ws in (second, third, other):
        await ws.close()


async def test_requests_over_the_rate_are_refused_in_band_until_the_window_turns(
    keyed: Daemon,
) -> None:
    """requests_per_minute: the fourth request gets rate_limit_exceeded with retry_after."""
    clock = Clock(6_000_000.0 + 45)  # 15 s left of the minute
    keyed.app[STATE].quotas.clock = clock
    async with keyed.ws_connect(PATH, headers=bearer("alpha-token")) as ws:
        for n in range(3):
            await ws.send_json(request(f"r{n}", model="m1"))
            assert content(await receive_answer(ws)) == f"r{n}"
        await ws.send_json(request("over", model="m1", request_id="x"))
        refused = await receive_envelope(ws)
        assert refused["error"]["code"] == "rate_limit_exceeded"
        assert refused["error"]["retry_after"] == 15
        assert "retry after 15 s" in refused["comment"][0]
        clock.now += 15
        await ws.send_json(request("again", model="m1"))
        assert content(await receive_answer(ws)) == "again"


async def test_tokens_over_the_rate_are_refused_after_the_answer_that_crossed(
    keyed: Daemon,
) -> None:
    """tokens_per_minute counts the engine's usage; the request that crosses is served."""
    keyed.app[STATE].quotas.clock = Clock()
    usage = {"stream_options": {"include_usage": True}}
    async with keyed.ws_connect(PATH, headers=bearer("beta-token")) as ws:
        await ws.send_json(request("abcdef", model="m2", **usage))  # 6 in, 6 out
        answer = await receive_answer(ws)
        assert answer[-1]["data"]["usage"]["total_tokens"] == 12
        await ws.send_json(request("x", model="m2", request_id="r"))
        refused = await receive_envelope(ws)
        assert refused["error"]["code"] == "rate_limit_exceeded"
        assert "10 tokens per minute" in refused["error"]["message"]


async def test_realtime_refusal_over_the_rate_is_an_error_event(keyed: Daemon) -> None:
    """A response.create over the rate: an ``error`` event with retry_after, no response."""
    keyed.app[STATE].quotas.clock = Clock(6_000_000.0 + 30)
    async with keyed.ws_connect(f"{PATH}?model=m1", headers=bearer("alpha-token")) as ws:
        await receive_until(ws, "session.created", key="type")
        for _ in range(3):
            await ws.send_json({"type": "response.create", "response": {"input": []}})
            events = await receive_until(ws, "response.done", key="type")
            limits = next(e for e in events if e["type"] == "rate_limits.updated")
            assert limits["rate_limits"][0]["name"] == "requests"
        assert limits["rate_limits"][0]["remaining"] == 1  # as of the second one's end
        await ws.send_json({"type": "response.create", "response": {"input": []}})
        error = await receive_envelope(ws)
        assert error["type"] == "error"
        assert error["error"]["code"] == "rate_limit_exceeded"
        assert error["error"]["retry_after"] == 30
        await ws.send_json({"type": "session.update", "session": {}})
        assert (await receive_envelope(ws))["type"] == "session.updated"


async def test_usage_is_counted_per_key_and_logged_without_the_token(keyed: Daemon) -> None:
    """Each answer adds to the key's counters and logs one ``usage`` line."""
    with capture_logs() as logs:
        async with keyed.ws_connect(PATH, headers=bearer("beta-token")) as ws:
            await ws.send_json(request("abc", model="m2", stream_options={"include_usage": True}))
            await receive_answer(ws)
            await until(lambda: any(line["event"] == "usage" for line in logs))
    usage = [line for line in logs if line["event"] == "usage"]
    assert len(usage) == 1
    line = usage[0]
    assert (line["key"], line["model"], line["outcome"]) == ("beta", "m2", "completed")
    assert (line["tokens_in"], line["tokens_out"]) == (3, 3)
    async with keyed.get("/metrics") as response:
        text = await response.text()
    assert 'realtime_daemon_key_tokens_total{direction="in",key="beta",model="m2"} 3.0' in text
    assert 'realtime_daemon_key_requests_total{key="beta",model="m2",outcome="completed"}' in text
    assert all("beta-token" not in repr(line) for line in logs)


async def test_sighup_revokes_a_removed_key_and_closes_its_sessions(
    daemon: StartDaemon, keys_file: Path, tmp_path: Path
) -> None:
    """A key removed from the file on SIGHUP: its sessions close 1008, it no longer gets in."""
    process, port = await serve_json(daemon, "--echo-delay-ms", "0", "--keys-file", str(keys_file))
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as session:
        alpha = await session.ws_connect(url, headers=bearer("alpha-token"))
        beta = await session.ws_connect(url, headers=bearer("beta-token"))
        disabled = KEYS.replace('name = "alpha"', 'name = "alpha"\ndisabled = true')
        keys_file.write_text(disabled)  # noqa: ASYNC240 - a few bytes, local
        process.proc.send_signal(signal.SIGHUP)
        reloaded = await process.wait_for_event("keys_reloaded")
        assert (reloaded["revoked"], reloaded["closed"]) == (["alpha"], 1)
        assert await receive_close(alpha) == (1008, "key 'alpha' was removed or disabled")
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url, headers=bearer("alpha-token"))
        await beta.send_json(request("still here", model="m2"))
        assert content(await receive_answer(beta)) == "still here"
        await beta.close()
    process.proc.send_signal(signal.SIGTERM)
    code, rest = await process.finish()
    assert code == 0
    log = "\n".join(map(repr, process.lines)) + rest
    assert "alpha-token" not in log and "beta-token" not in log


def test_a_bad_keys_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """A key without token or sha256 exits 2 before binding, naming the key, not a token."""
    from click.testing import CliRunner

    from realtime_daemon.cli import main

    path = tmp_path / "keys.toml"
    path.write_text('[[keys]]\nname = "k"\nmodels = ["m"]\n')
    result = CliRunner().invoke(main, ["serve", "--keys-file", str(path)])
    assert result.exit_code == 2
    assert "key 'k' needs token or sha256" in result.output


async def test_tokens_per_minute_from_an_upstream_s_usage_through_the_sdk(
    proxy: Start, upstream: Upstream, keys_file: Path
) -> None:
    """The upstream's usage counts against tokens_per_minute; the SDK sees
    rate_limits.updated as each response starts, then the refusal."""
    daemon = await proxy(upstream, keys_file=str(keys_file))
    daemon.app[STATE].quotas.clock = Clock(6_000_000.0 + 20)
    base = f"{daemon.host}:{daemon.port}/v1"
    client = AsyncOpenAI(
        api_key="delta-token", base_url=f"http://{base}", websocket_base_url=f"ws://{base}"
    )
    async with client.realtime.connect(model="m") as conn:
        await conn.conversation.item.create(item=user("one two three"))
        first = await answer_with_limits(conn)
        await conn.conversation.item.create(item=user("four"))
        second = await answer_with_limits(conn)
        await conn.response.create()
        refused = (await events_until(conn, "error"))[-1]
    tokens = {f.name: f for f in first[0].rate_limits}
    assert (tokens["tokens"].limit, tokens["tokens"].remaining) == (8, 8)
    assert tokens["requests"].remaining == 100  # as of the last response's end: none yet
    after = {f.name: f for f in second[0].rate_limits}
    assert after["tokens"].remaining == 2  # the upstream's 3 in and 3 out
    assert after["requests"].remaining == 99
    assert after["tokens"].reset_seconds == 40
    assert refused.error.code == "rate_limit_exceeded"
    assert "8 tokens per minute" in refused.error.message


async def answer_with_limits(conn: Any) -> list[Any]:
    """A response's events from rate_limits.updated (which comes after response.created)."""
    events = await answer(conn)
    limits = [e for e in events if e.type == "rate_limits.updated"]
    assert len(limits) == 1
    return limits + events


async def test_a_key_s_audio_seconds_are_counted(
    serve_engine: StartServer, keys_file: Path, stt: FakeSTT
) -> None:
    """Voice in under a key: the seconds heard are the key's too, by the session's model."""
    stt.text = "turn on the lights"
    daemon = await serve_engine(stt="openai", stt_url=(stt.url,), keys_file=str(keys_file))
    async with sdk(daemon, api_key="delta-token").realtime.connect(model="echo") as conn:
        await conn.session.update(session=listening(False))
        await voice_until(conn, "session.updated")
        await append_all(conn, TURN)
        await voice_until(conn, "response.done")
    samples = await scrape(daemon)
    labels = (("direction", "in"), ("key", "delta"), ("model", "echo"))
    assert samples[("realtime_daemon_key_audio_seconds_total", labels)] == pytest.approx(2.8)


async def test_a_key_s_spoken_seconds_are_counted(
    serve_engine: StartServer, keys_file: Path
) -> None:
    """Voice out under a key: the seconds spoken are the key's (direction out) and the
    daemon's (by text-to-speech engine)."""
    async for (tts,) in fake_ttss(1):
        daemon = await serve_engine(tts="openai", tts_url=(tts.url,), keys_file=str(keys_file))
        async with sdk(daemon, api_key="delta-token").realtime.connect(model="echo") as conn:
            await conn.conversation.item.create(item=user("Hello there."))
            await conn.response.create()
            await voice_until(conn, "response.done")
        samples = await scrape(daemon)
    seconds = len("Hello there.") * MS_PER_CHARACTER / 1000
    labels = (("direction", "out"), ("key", "delta"), ("model", "echo"))
    assert samples[("realtime_daemon_key_audio_seconds_total", labels)] == pytest.approx(seconds)
    engine = (("engine", "openai"),)
    assert samples[("realtime_daemon_audio_output_seconds_total", engine)] == pytest.approx(seconds)
