"""Resumable sessions: a lost connection, then the same session and answer on a new one."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from realtime_daemon.server.app import STATE
from realtime_daemon.session.host import Host
from realtime_daemon.wire.http import Refusal

from .conftest import (
    PATH,
    Daemon,
    Start,
    StartServer,
    receive_close,
    receive_envelope,
    request,
)
from .engines import EndlessEngine
from .rawws import RawWebSocket
from .test_metrics import scrape
from .upstream import Upstream

PROMPT = "".join(chr(0x61 + i % 26) for i in range(300))


_OPEN: list[RawWebSocket] = []


@pytest.fixture(autouse=True)
async def _drop_connections(serve_engine: StartServer) -> AsyncIterator[None]:
    """Every raw connection a test opened is dropped after it, before its daemon stops."""
    yield
    while _OPEN:
        _OPEN.pop().abort()


async def connect(daemon: Daemon, path: str = PATH, **headers: str) -> RawWebSocket:
    ws = await RawWebSocket.connect(daemon.host, daemon.port, path, headers)
    _OPEN.append(ws)
    return ws


def send(ws: RawWebSocket, message: dict[str, Any]) -> None:
    ws.send_frame(json.dumps(message).encode())


async def receive(ws: RawWebSocket) -> dict[str, Any]:
    async with asyncio.timeout(5):
        opcode, payload = await ws.read_frame()
        while opcode == 0x9:  # a ping (left unanswered)
            opcode, payload = await ws.read_frame()
    assert opcode == 0x1, (opcode, payload)
    envelope: dict[str, Any] = json.loads(payload)
    return envelope


async def make_resumable(ws: RawWebSocket) -> str:
    """Ask for a resumable session; its token."""
    send(ws, {"type": "session.update", "session": {"resumable": True}})
    updated = await receive(ws)
    assert updated["event"] == "session.updated", updated
    token: str = updated["data"]["resume_token"]
    assert updated["data"]["resumable"] is True
    return token


def resume_path(token: str, after: int | str) -> str:
    return f"{PATH}?resume={token}&after={after}"


async def read_chunks(ws: RawWebSocket, n: int) -> list[dict[str, Any]]:
    return [await receive(ws) for _ in range(n)]


async def read_to_finish(ws: RawWebSocket) -> list[dict[str, Any]]:
    envelopes = []
    while True:
        envelope = await receive(ws)
        envelopes.append(envelope)
        if envelope["data"]["choices"][0]["finish_reason"]:
            return envelopes


def check_ids(envelopes: list[dict[str, Any]]) -> None:
    """Ids run on by one from the first: none missing, none repeated."""
    ids = [int(e["id"]) for e in envelopes]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids


def text(envelopes: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["choices"][0]["delta"].get("content", "") for e in envelopes)


async def refused_status(daemon: Daemon, path: str, **headers: str) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await daemon.ws_connect(path, headers=headers)
    return refused.value.status


@pytest.fixture
async def slow(serve_engine: StartServer) -> Daemon:
    """The echo engine at 2 ms a character: a 300-character answer takes 0.6 s."""
    return await serve_engine(echo_delay_ms=2)


async def test_cut_mid_answer_then_resumed_with_the_whole_answer(slow: Daemon) -> None:
    """Transport aborted mid-answer, then resumed after the last id seen: every
    envelope once, in order, the whole text."""
    ws = await connect(slow)
    token = await make_resumable(ws)
    send(ws, request(PROMPT))
    got = await read_chunks(ws, 10)
    ws.abort()
    again = await connect(slow, resume_path(token, got[-1]["id"]))
    got += await read_to_finish(again)
    check_ids(got)
    assert text(got) == PROMPT
    # The session goes on: a new request on the resumed connection.
    send(again, request("more"))
    assert text(await read_to_finish(again)) == "more"


async def test_resumed_twice_in_one_answer(slow: Daemon) -> None:
    """Two cuts in one answer, two resumes: still every envelope once, in order."""
    ws = await connect(slow)
    token = await make_resumable(ws)
    send(ws, request(PROMPT))
    got = await read_chunks(ws, 5)
    for _ in range(2):
        ws.abort()
        ws = await connect(slow, resume_path(token, got[-1]["id"]))
        got += await read_chunks(ws, 20)
    got += await read_to_finish(ws)
    check_ids(got)
    assert text(got) == PROMPT


async def test_resume_after_an_older_id_replays_from_there(slow: Daemon) -> None:
    """``after`` may be older than what was delivered: those envelopes come again."""
    ws = await connect(slow)
    token = await make_resumable(ws)
    send(ws, request(PROMPT))
    got = await read_chunks(ws, 10)
    ws.abort()
    again = await connect(slow, resume_path(token, got[4]["id"]))
    replayed = await read_to_finish(again)
    assert replayed[:5] == got[5:]
    assert text(got[:5] + replayed) == PROMPT


async def test_resume_takes_over_a_connection_still_open(slow: Daemon) -> None:
    """A resume while the daemon still sees the old connection (half-open) takes the
    session over; the old connection is closed 1001."""
    ws = await connect(slow)
    token = await make_resumable(ws)
    send(ws, request(PROMPT))
    got = await read_chunks(ws, 3)
    again = await connect(slow, resume_path(token, got[-1]["id"]))
    got += await read_to_finish(again)
    check_ids(got)
    assert text(got) == PROMPT
    async with asyncio.timeout(5):
        assert await ws.read_close() == (1001, "session resumed on another connection")


async def test_window_expired_stops_the_upstream_and_refuses_the_resume(
    proxy: Start, upstream: Upstream
) -> None:
    """No resume within --resume-window: the session ends, its upstream request is
    closed, and the token is refused (404)."""
    upstream.mode = "endless"
    daemon = await proxy(upstream, resume_window=0.2)
    ws = await connect(daemon)
    token = await make_resumable(ws)
    send(ws, request("go"))
    got = await read_chunks(ws, 2)
    ws.abort()
    async with asyncio.timeout(5):
        await upstream.disconnected.wait()
    assert await refused_status(daemon, resume_path(token, got[-1]["id"])) == 404
    samples = await scrape(daemon)
    assert samples[("realtime_daemon_sessions_expired_total", ())] == 1
    assert samples[("realtime_daemon_resumes_refused_total", (("reason", "resume_unknown"),))] == 1


async def test_the_upstream_request_is_not_restarted_on_resume(
    proxy: Start, upstream: Upstream
) -> None:
    """With the openai engine the answer goes on from the same upstream request."""
    upstream.mode = "hold_done"
    daemon = await proxy(upstream)
    ws = await connect(daemon)
    token = await make_resumable(ws)
    send(ws, request("one two three"))
    first = await read_chunks(ws, 1)
    ws.abort()
    again = await connect(daemon, resume_path(token, first[-1]["id"]))
    got = first + await read_to_finish(again)
    upstream.release_done.set()
    check_ids(got)
    assert text(got) == "onetwothree"
    assert len(upstream.bodies) == 1


async def test_a_full_buffer_pauses_generation_and_loses_nothing(
    serve_engine: StartServer,
) -> None:
    """Held past --resume-buffer, the answer pauses (the engine is not asked for more);
    the resumed client gets every envelope."""
    engine = EndlessEngine()
    daemon = await serve_engine(engine, resume_buffer=4000)
    ws = await connect(daemon)
    token = await make_resumable(ws)
    send(ws, request("x", request_id="r"))
    got = await read_chunks(ws, 3)
    ws.abort()
    async with asyncio.timeout(5):
        while (await scrape(daemon))[("realtime_daemon_resume_buffer_bytes", ())] < 4000:
            pass
    paused_at = engine.chunks
    await scrape(daemon)
    assert engine.chunks <= paused_at + 1  # at most the chunk the engine was holding
    again = await connect(daemon, resume_path(token, got[-1]["id"]))
    got += await read_chunks(again, paused_at)
    check_ids(got)
    assert all(e["data"]["choices"][0]["delta"].get("content") == "x" for e in got[1:])
    send(again, {"type": "request.cancel", "request_id": "r"})


async def test_unknown_token_is_refused(slow: Daemon) -> None:
    """A token nobody was given: 404 before the upgrade."""
    assert await refused_status(slow, resume_path("nope", 0)) == 404


async def test_bad_after_is_refused(slow: Daemon) -> None:
    """``after`` that is not an id, or beyond the last the session produced: 400."""
    ws = await connect(slow)
    token = await make_resumable(ws)
    assert await refused_status(slow, resume_path(token, "soon")) == 400
    assert await refused_status(slow, resume_path(token, 99)) == 400


@pytest.fixture
async def guarded(serve_engine: StartServer, tmp_path: Path) -> Daemon:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-token\nbob-token\n")
    return await serve_engine(auth_token_file=str(tokens), echo_delay_ms=2)


async def test_another_identity_cannot_resume(guarded: Daemon) -> None:
    """With auth on, only the bearer token the session started with resumes it."""
    alice = {"Authorization": "Bearer alice-token"}
    ws = await connect(guarded, **alice)
    token = await make_resumable(ws)
    send(ws, request(PROMPT))
    got = await read_chunks(ws, 2)
    ws.abort()
    path = resume_path(token, got[-1]["id"])
    assert await refused_status(guarded, path, Authorization="Bearer bob-token") == 403
    again = await connect(guarded, path, **alice)
    got += await read_to_finish(again)
    assert text(got) == PROMPT


async def test_a_close_from_the_client_ends_the_session_at_once(
    serve_engine: StartServer,
) -> None:
    """A Close frame is not a lost connection: the session ends, its answer is stopped,
    its token is refused."""
    engine = EndlessEngine()
    daemon = await serve_engine(engine)
    async with daemon.ws_connect(PATH) as ws:
        await ws.send_json({"type": "session.update", "session": {"resumable": True}})
        token = (await ws.receive_json())["data"]["resume_token"]
        await ws.send_json(request("x"))
        await engine.streaming.wait()
    async with asyncio.timeout(2):
        await engine.ended.wait()
    assert await refused_status(daemon, resume_path(token, 0)) == 404


async def test_resume_off_is_refused_in_band_and_at_the_upgrade(
    serve_engine: StartServer,
) -> None:
    """--resume-window 0: resumable is refused (resume_unavailable), and so is ?resume=."""
    daemon = await serve_engine(resume_window=0)
    async with daemon.ws_connect(PATH) as ws:
        await ws.send_json({"type": "session.update", "session": {"resumable": True}})
        error = (await ws.receive_json())["error"]
    assert error["code"] == "resume_unavailable"
    assert await refused_status(daemon, resume_path("x", 0)) == 409


async def test_workers_turn_resume_off(serve_engine: StartServer) -> None:
    """Under --workers 2 a reconnect may reach another process: resume is refused."""
    daemon = await serve_engine(workers=2)
    async with daemon.ws_connect(PATH) as ws:
        await ws.send_json({"type": "session.update", "session": {"resumable": True}})
        error = (await ws.receive_json())["error"]
    assert (error["code"], "--workers" in error["message"]) == ("resume_unavailable", True)


async def test_a_realtime_session_resumes_after_an_event_id(slow: Daemon) -> None:
    """The Realtime dialect: resumable in session.update, resumed after an event_id."""
    ws = await connect(slow, PATH + "?model=echo")
    assert (await receive(ws))["type"] == "session.created"
    send(ws, {"type": "session.update", "session": {"resumable": True}})
    token = (await receive(ws))["session"]["resume_token"]
    send(
        ws,
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": PROMPT}],
            },
        },
    )
    send(ws, {"type": "response.create"})
    events = [await receive(ws) for _ in range(12)]
    ws.abort()
    again = await connect(slow, resume_path(token, events[-1]["event_id"]))
    while events[-1]["type"] != "response.done":
        events.append(await receive(again))
    numbers = [int(e["event_id"].removeprefix("event_")) for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == PROMPT
    assert events[-1]["response"]["status"] == "completed"


async def test_a_heartbeat_timeout_holds_the_session(serve_engine: StartServer) -> None:
    """A client that stops answering pings lost its connection: the session is held."""
    daemon = await serve_engine(heartbeat=0.1)
    ws = await connect(daemon)
    token = await make_resumable(ws)
    async with asyncio.timeout(5):
        while (await scrape(daemon))[("realtime_daemon_sessions_held", ())] < 1:
            pass
    again = await connect(daemon, resume_path(token, 1))
    send(again, request("back"))
    assert text(await read_to_finish(again)) == "back"
    assert (await scrape(daemon))[("realtime_daemon_sessions_held", ())] == 0


async def test_the_readme_client_resumes_through_a_cut(slow: Daemon) -> None:
    """The README's resuming client, run through a relay that cuts its first connection
    mid-answer, still prints the whole answer."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = readme.split("A client that resumes, with `websockets`:\n\n```python\n")[1]
    code = code.split("```")[0]
    cuts = 0

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        nonlocal cuts
        server_r, server_w = await asyncio.open_connection(slow.host, slow.port)
        cut_after = 600 if cuts == 0 else None  # bytes of the first connection's answer
        cuts += 1

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, limit: int | None) -> None:
            sent = 0
            while data := await r.read(256):
                w.write(data)
                sent += len(data)
                if limit is not None and sent > limit:
                    break
            for writer in (client_w, server_w):
                writer.transport.abort()

        await asyncio.gather(pipe(client_r, server_w, None), pipe(server_r, client_w, cut_after))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    code = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
        "Hi, twice if need be", PROMPT
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        out, _ = await proc.communicate()
    server.close()
    assert out.decode() == PROMPT + "\n"
    assert cuts == 2


async def test_a_held_session_ends_with_the_drain(serve_engine: StartServer) -> None:
    """SIGTERM's drain ends a held session like any other: its answer is cut at the
    deadline, and it is no longer resumable."""
    engine = EndlessEngine()
    daemon = await serve_engine(engine, shutdown_timeout=0.1)
    ws = await connect(daemon)
    token = await make_resumable(ws)
    send(ws, request("x"))
    await read_chunks(ws, 2)
    ws.abort()
    async with asyncio.timeout(5):
        await daemon.app.shutdown()
        await engine.ended.wait()
    refusal = daemon.app[STATE].resumes.check(token, None, None)
    assert isinstance(refusal, Refusal) and refusal.code == "resume_unknown"


async def test_an_expired_session_leaves_nothing_behind(serve_engine: StartServer) -> None:
    """Once a held session expires, its connection object (session, outbox, replay
    buffer, engines' state) is freed."""
    daemon = await serve_engine(resume_window=0.05)
    ws = await connect(daemon)
    token = await make_resumable(ws)
    send(ws, request("some answer"))
    await read_to_finish(ws)
    gc.collect()
    (held,) = (o for o in gc.get_objects() if isinstance(o, Host) and o.token == token)
    session_id = held.session_id
    del held

    def alive() -> bool:
        gc.collect()
        return any(isinstance(o, Host) and o.session_id == session_id for o in gc.get_objects())

    assert alive()
    ws.abort()
    async with asyncio.timeout(5):
        while (await scrape(daemon))[("realtime_daemon_sessions_expired_total", ())] < 1:
            pass
        await daemon.app[STATE].connections.wait_closed()
    assert not alive()


async def test_the_drain_ends_a_held_session_whose_answer_is_paused(
    serve_engine: StartServer,
) -> None:
    """A held session paused on its full buffer still ends at the drain's deadline."""
    engine = EndlessEngine()
    daemon = await serve_engine(engine, resume_buffer=2000, shutdown_timeout=0.1)
    ws = await connect(daemon)
    await make_resumable(ws)
    send(ws, request("x"))
    await read_chunks(ws, 2)
    ws.abort()
    async with asyncio.timeout(5):
        while (await scrape(daemon))[("realtime_daemon_resume_buffer_bytes", ())] < 2000:
            pass
        await daemon.app.shutdown()
        await engine.ended.wait()


async def test_a_protocol_error_ends_a_resumable_session_at_once(
    serve_engine: StartServer,
) -> None:
    """A connection the daemon closes for a protocol error (here a reserved opcode) is
    not a lost one: the session ends, its answer stopped, its token refused."""
    engine = EndlessEngine()
    daemon = await serve_engine(engine)
    ws = await connect(daemon)
    token = await make_resumable(ws)
    send(ws, request("x"))
    await read_chunks(ws, 2)
    # A frame to answer, then the broken one in the same write: the session is
    # writing its answer when the daemon closes the connection.
    send(ws, {"type": "session.update", "session": {}})
    ws.send_frame(b"junk", opcode=0x3)
    async with asyncio.timeout(5):
        await engine.ended.wait()
    assert await refused_status(daemon, resume_path(token, 0)) == 404


async def test_a_second_resume_takes_over_the_first(slow: Daemon) -> None:
    """Resumed on one connection, then on another while the first is still open: the
    latest wins, the first is closed 1001, and nothing is lost or repeated."""
    ws = await connect(slow)
    token = await make_resumable(ws)
    send(ws, request(PROMPT))
    got = await read_chunks(ws, 3)
    ws.abort()
    first = await connect(slow, resume_path(token, got[-1]["id"]))
    got += await read_chunks(first, 3)
    second = await connect(slow, resume_path(token, got[-1]["id"]))
    got += await read_to_finish(second)
    check_ids(got)
    assert text(got) == PROMPT
    async with asyncio.timeout(5):
        assert await first.read_close() == (1001, "session resumed on another connection")
    samples = await scrape(slow)
    assert samples[("realtime_daemon_sessions_resumed_total", ())] == 2


async def test_a_taken_over_connection_is_closed_1001_saying_why(slow: Daemon) -> None:
    """A resume while the old connection is open closes the old one with 1001 and a
    reason saying the session went on another connection."""
    async with slow.ws_connect(PATH) as old:
        await old.send_json({"type": "session.update", "session": {"resumable": True}})
        updated = await receive_envelope(old)
        token = updated["data"]["resume_token"]
        await old.send_json(request(PROMPT))
        last = (await receive_envelope(old))["id"]
        async with slow.ws_connect(resume_path(token, last)) as new:
            assert await receive_close(old) == (1001, "session resumed on another connection")
            got = [await receive_envelope(new)]
            while not got[-1]["data"]["choices"][0]["finish_reason"]:
                got.append(await receive_envelope(new))
    assert int(got[0]["id"]) == int(last) + 1
    samples = await scrape(slow)
    assert samples[("realtime_daemon_closes_total", (("code", "1001"),))] == 1


async def test_resume_without_after_replays_from_the_first_envelope(slow: Daemon) -> None:
    """``?resume=TOKEN`` alone replays every envelope from the session's first."""
    ws = await connect(slow)
    token = await make_resumable(ws)
    send(ws, request("short"))
    got = await read_to_finish(ws)
    ws.abort()
    again = await connect(slow, f"{PATH}?resume={token}")
    replayed = [await receive(again)]
    replayed += await read_to_finish(again)
    assert [e["id"] for e in replayed] == ["1", *(e["id"] for e in got)]
    assert replayed[1:] == got


async def test_after_beyond_the_last_id_is_resume_invalid(slow: Daemon) -> None:
    """``after`` one past the last id the session produced is refused 400,
    ``resume_invalid``, not ``resume_gap``."""
    ws = await connect(slow)
    token = await make_resumable(ws)
    send(ws, request("short"))
    last = int((await read_to_finish(ws))[-1]["id"])
    assert await refused_status(slow, resume_path(token, last + 1)) == 400
    samples = await scrape(slow)
    assert samples[("realtime_daemon_resumes_refused_total", (("reason", "resume_invalid"),))] == 1
