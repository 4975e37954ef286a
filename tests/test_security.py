"""Who gets in and who cannot hurt it: tokens, origins, TLS, limits, timeouts."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode
from structlog.testing import capture_logs

from realtime_daemon.server.app import STATE

from .conftest import (
    PATH,
    Certificate,
    StartDaemon,
    StartServer,
    content,
    receive_answer,
    receive_close,
    receive_envelope,
    request,
    serve_json,
)
from .engines import BlastEngine, EndlessEngine
from .rawws import RawWebSocket
from .test_metrics import scrape

TOKEN = "s3cr3t-token-0123456789abcdef"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# operators\n{TOKEN}\n\nother-token\n")
    return path


async def refused_status(client: Any, **kwargs: Any) -> aiohttp.WSServerHandshakeError:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(PATH, **kwargs)
    return refused.value


async def test_upgrade_without_or_with_a_wrong_token_is_401(
    serve_engine: StartServer, token_file: Path
) -> None:
    """With a token file, a missing or wrong bearer token gets 401 before the upgrade."""
    client = await serve_engine(auth_token_file=str(token_file))
    assert (await refused_status(client)).status == 401
    wrong = {"Authorization": "Bearer not-" + TOKEN}
    assert (await refused_status(client, headers=wrong)).status == 401
    async with client.get(PATH, headers={"Upgrade": "websocket"}) as response:
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in await response.text()


async def test_bearer_header_lets_the_client_in(
    serve_engine: StartServer, token_file: Path
) -> None:
    """Authorization: Bearer <token> opens the WebSocket."""
    client = await serve_engine(auth_token_file=str(token_file))
    async with client.ws_connect(PATH, headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await ws.send_json(request("in"))
        assert content(await receive_answer(ws)) == "in"


async def test_the_model_list_needs_a_token(serve_engine: StartServer, token_file: Path) -> None:
    """With a token file, GET /v1/models is 401 without a valid token, as OpenAI's is."""
    client = await serve_engine(auth_token_file=str(token_file))
    for headers in ({}, {"Authorization": "Bearer not-" + TOKEN}):
        async with client.get("/v1/models", headers=headers) as response:
            assert (response.status, response.headers["WWW-Authenticate"]) == (401, "Bearer")
            assert (await response.json())["error"]["code"] == "invalid_api_key"
    async with client.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert (response.status, (await response.json())["object"]) == (200, "list")


async def test_health_and_metrics_need_no_token(
    serve_engine: StartServer, token_file: Path
) -> None:
    """With a token file, /health, /live and /metrics still answer without one."""
    client = await serve_engine(auth_token_file=str(token_file))
    for path in ("/health", "/live", "/metrics"):
        async with client.get(path) as response:
            assert response.status == 200, path


async def test_browser_token_rides_in_the_subprotocol_and_is_not_echoed(
    serve_engine: StartServer, token_file: Path
) -> None:
    """Sec-WebSocket-Protocol: realtime-daemon, bearer.<token> opens it; only the name returns."""
    client = await serve_engine(auth_token_file=str(token_file))
    protocols = ("realtime-daemon", f"bearer.{TOKEN}")
    async with client.ws_connect(PATH, protocols=protocols) as ws:
        assert ws.protocol == "realtime-daemon"
        await ws.send_json(request("browser"))
        assert content(await receive_answer(ws)) == "browser"


async def test_tokens_are_never_logged(serve_engine: StartServer, token_file: Path) -> None:
    """Neither a refused nor an accepted token appears in any log event."""
    client = await serve_engine(auth_token_file=str(token_file))
    with capture_logs() as logs:
        await refused_status(client, headers={"Authorization": "Bearer wrong-one"})
        async with client.ws_connect(PATH, headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await ws.send_json(request("x"))
            await receive_answer(ws)
        async with asyncio.timeout(2):
            await client.app[STATE].connections.wait_closed()
    assert logs
    assert TOKEN not in repr(logs) and "wrong-one" not in repr(logs)


async def test_sighup_reloads_tokens_without_dropping_connections(
    daemon: StartDaemon, token_file: Path
) -> None:
    """After SIGHUP the new file is in force; a connection made with an old token stays."""
    process, port = await serve_json(
        daemon, "--echo-delay-ms", "0", "--auth-token-file", str(token_file)
    )
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as session:
        old = await session.ws_connect(url, headers={"Authorization": f"Bearer {TOKEN}"})
        token_file.write_text("brand-new-token\n")  # noqa: ASYNC240 - a few bytes, local
        process.proc.send_signal(signal.SIGHUP)
        assert (await process.wait_for_event("keys_reloaded"))["keys"] == 1
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url, headers={"Authorization": f"Bearer {TOKEN}"})
        new = await session.ws_connect(url, headers={"Authorization": "Bearer brand-new-token"})
        for ws in (old, new):
            await ws.send_json(request("still here"))
            assert content(await receive_answer(ws)) == "still here"
            await ws.close()
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_sighup_without_a_token_file_changes_nothing(daemon: StartDaemon) -> None:
    """SIGHUP with nothing to reload is logged; the daemon and its connections go on."""
    process, port = await serve_json(daemon, "--echo-delay-ms", "0")
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        process.proc.send_signal(signal.SIGHUP)
        assert (await process.wait_for_event("reload_skipped"))["reason"] == (
            "no --keys-file or --auth-token-file to reload"
        )
        await ws.send_json(request("still here"))
        assert content(await receive_answer(ws)) == "still here"
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_cross_site_origin_is_403(serve_engine: StartServer) -> None:
    """A browser Origin that is neither the daemon's own nor allowed gets 403."""
    client = await serve_engine(allowed_origin=("https://app.example",))
    refused = await refused_status(client, headers={"Origin": "https://evil.example"})
    assert refused.status == 403
    for origin in ("https://app.example", f"http://127.0.0.1:{client.port}"):
        async with client.ws_connect(PATH, headers={"Origin": origin}) as ws:
            assert not ws.closed
    async with client.ws_connect(PATH) as ws:  # no Origin: not a browser
        assert not ws.closed


async def test_tls_serves_wss_and_https(
    serve_engine: StartServer, certificate: Certificate
) -> None:
    """With a certificate the daemon speaks wss:// and https:// to a verifying client."""
    from realtime_daemon.server.sockets import tls_context

    daemon = await serve_engine(tls_certfile=certificate.certfile, tls_keyfile=certificate.keyfile)
    # The fixture binds plain TCP; serve() binds with tls_context, tested here the same way.
    from aiohttp import web

    from realtime_daemon.server.serve import make_runner

    config = daemon.app[STATE].config
    runner = make_runner(daemon.app, config)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls_context(config))
    await site.start()
    port = runner.addresses[0][1]
    client_ctx = certificate.client_context
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/live", ssl=client_ctx) as r:
                assert r.status == 200
            async with session.ws_connect(f"wss://127.0.0.1:{port}{PATH}", ssl=client_ctx) as ws:
                await ws.send_json(request("secure"))
                assert content(await receive_answer(ws)) == "secure"
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"https://127.0.0.1:{port}/live")
    finally:
        await runner.cleanup()


async def test_unix_socket_and_forwarded_client_address(
    daemon: StartDaemon, tmp_path: Path
) -> None:
    """--unix listens on a socket; a trusted proxy's X-Forwarded-For names the client in logs."""
    path = str(tmp_path / "daemon.sock")
    process = await daemon(
        "serve",
        "--unix",
        path,
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--log-format",
        "json",
        "--echo-delay-ms",
        "0",
    )
    assert (await process.wait_for_event("server_ready"))["unix"] == path
    connector = aiohttp.UnixConnector(path=path)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}
        async with session.ws_connect(f"http://localhost{PATH}", headers=headers) as ws:
            await ws.send_json(request("via proxy"))
            assert content(await receive_answer(ws)) == "via proxy"
    closed = await process.wait_for_event("connection_closed")
    assert closed["peer"] == "203.0.113.7"
    process.proc.send_signal(signal.SIGTERM)
    assert (await process.finish())[0] == 0


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    serve_engine: StartServer,
) -> None:
    """X-Forwarded-For counts only when the peer is a trusted proxy."""
    client = await serve_engine(forwarded_allow_ips=("10.0.0.0/8",))
    with capture_logs() as logs:
        headers = {"X-Forwarded-For": "198.51.100.1"}
        async with client.ws_connect(PATH, headers=headers):
            pass
        async with asyncio.timeout(2):
            await client.app[STATE].connections.wait_closed()
    closed = [e for e in logs if e["event"] == "connection_closed"]
    assert closed[0]["peer"] == "127.0.0.1"


async def test_connections_past_the_limit_get_503(serve_engine: StartServer) -> None:
    """Past --max-connections, upgrades get 503 with Retry-After; a freed slot is reusable."""
    client = await serve_engine(max_connections=2)
    first = await client.ws_connect(PATH)
    second = await client.ws_connect(PATH)
    refused = await refused_status(client)
    assert refused.status == 503
    assert refused.headers is not None and refused.headers["Retry-After"] == "1"
    await first.close()
    await second.close()
    async with asyncio.timeout(2):
        await client.app[STATE].connections.wait_closed()
    async with client.ws_connect(PATH) as third:
        await third.send_json(request("slot"))
        assert content(await receive_answer(third)) == "slot"


async def test_request_over_the_rate_gets_an_error_envelope(serve_engine: StartServer) -> None:
    """A request over --max-requests-per-second is dropped with an error envelope."""
    client = await serve_engine(max_requests_per_second=1)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("a"))
        await ws.send_json(request("b"))
        frames = [await receive_envelope(ws) for _ in range(3)]
        await ws.close()
        assert ws.close_code == WSCloseCode.OK
    errors = [f for f in frames if f.get("event") == "error"]
    assert [e["comment"] for e in errors] == [
        ["rate limit: at most 1 requests per second; request dropped"]
    ]
    assert content([f for f in frames if "data" in f]) == "a"


async def test_client_that_keeps_going_over_the_rate_is_closed_1008(
    serve_engine: StartServer,
) -> None:
    """A client that keeps sending over its rate is closed with 1008."""
    client = await serve_engine(max_requests_per_second=1)
    async with client.ws_connect(PATH) as ws:
        for n in range(4):
            await ws.send_json(request(f"r{n}"))
        while (msg := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
            pass
    assert (msg.data, msg.extra) == (WSCloseCode.POLICY_VIOLATION, "request rate limit exceeded")


async def test_peer_that_does_not_answer_pings_is_dropped(serve_engine: StartServer) -> None:
    """With --heartbeat, a peer that never answers a ping is closed and its engine stopped."""
    engine = EndlessEngine()
    client = await serve_engine(engine, heartbeat=0.2)
    raw = await RawWebSocket.connect(client.host, client.port, PATH)
    raw.send_frame(json.dumps(request("x")).encode())
    opcodes = set()
    async with asyncio.timeout(3):
        with pytest.raises(asyncio.IncompleteReadError):
            while True:  # read, never answer the pings
                opcodes.add((await raw.read_frame())[0])
        await engine.ended.wait()
    assert 0x9 in opcodes  # it was pinged
    raw.abort()


async def test_idle_connection_is_closed_but_a_busy_one_is_not(
    serve_engine: StartServer,
) -> None:
    """--idle-timeout closes a quiet connection, not one whose answer is streaming."""
    client = await serve_engine(idle_timeout=0.2, echo_delay_ms=50)
    async with client.ws_connect(PATH) as ws:
        await ws.send_json(request("0123456789"))  # 0.5 s of answer, longer than idle
        assert content(await receive_answer(ws)) == "0123456789"
        assert await receive_close(ws) == (WSCloseCode.OK, "idle timeout")


async def test_client_that_stops_reading_is_cut_off(serve_engine: StartServer) -> None:
    """A client leaving its output unread past --send-timeout is cut off, engine stopped."""
    engine = BlastEngine()
    client = await serve_engine(engine, send_timeout=0.3)
    raw = await RawWebSocket.connect(client.host, client.port, PATH)
    raw.send_frame(json.dumps(request("x")).encode())
    with capture_logs() as logs:
        async with asyncio.timeout(10):
            await engine.ended.wait()
            await client.app[STATE].connections.wait_closed()
    closed = [e for e in logs if e["event"] == "connection_closed"]
    assert (closed[0]["code"], closed[0]["reason"]) == (1008, "send timeout: client not reading")
    raw.abort()


async def test_connection_that_never_finishes_its_handshake_is_closed(
    serve_engine: StartServer,
) -> None:
    """A connection that sends half a request is closed after --handshake-timeout."""
    client = await serve_engine(handshake_timeout=0.2)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: webso")
    async with asyncio.timeout(3):
        assert await reader.read() == b""
    writer.close()


async def test_refused_upgrades_are_logged_and_counted(
    serve_engine: StartServer, token_file: Path
) -> None:
    """Each refused upgrade is one log line (status, reason, peer; no token) and a count."""
    client = await serve_engine(
        auth_token_file=str(token_file), allowed_origin=("https://app.example",)
    )
    bearer = {"Authorization": "Bearer not-" + TOKEN}
    with capture_logs() as logs:
        assert (await refused_status(client, headers=bearer)).status == 401
        evil = {**bearer, "Origin": "https://evil.example"}
        assert (await refused_status(client, headers=evil)).status == 403
    refusals = [log for log in logs if log["event"] == "upgrade_refused"]
    assert [(r["status"], r["reason"], r["peer"]) for r in refusals] == [
        (401, "unauthorized", "127.0.0.1"),
        (403, "origin_not_allowed", "127.0.0.1"),
    ]
    assert TOKEN not in str(logs)
    samples = await scrape(client)
    for reason in ("unauthorized", "origin_not_allowed"):
        assert samples[("realtime_daemon_upgrades_refused_total", (("reason", reason),))] == 1


async def test_an_origins_default_port_compares_equal(serve_engine: StartServer) -> None:
    """https://app.example:443 is https://app.example (and an allowed :8443 is not)."""
    client = await serve_engine(allowed_origin=("https://APP.example", "https://x.example:8443"))
    for origin in ("https://app.example:443", "https://app.example", "https://x.example:8443"):
        async with client.ws_connect(PATH, headers={"Origin": origin}) as ws:
            assert not ws.closed
    refused = await refused_status(client, headers={"Origin": "https://x.example"})
    assert refused.status == 403


async def test_dns_rebinding_is_not_the_daemons_own_origin(serve_engine: StartServer) -> None:
    """A page of a name whose DNS points at the daemon (Origin and Host that name) gets 403."""
    client = await serve_engine()
    name = f"evil.example:{client.port}"
    rebound = {"Origin": f"http://{name}", "Host": name}
    assert (await refused_status(client, headers=rebound)).status == 403
    own = {"Origin": f"http://127.0.0.1:{client.port}"}
    async with client.ws_connect(PATH, headers=own) as ws:
        assert not ws.closed


async def test_oversized_request_head_is_one_warning_without_traceback(
    daemon: StartDaemon,
) -> None:
    """A 20 kB header is refused with one warning line (peer, reason), not an error trace."""
    process, port = await serve_json(daemon)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n")
    status = await reader.readline()
    writer.close()
    process.proc.send_signal(signal.SIGTERM)
    await process.wait_for_event("server_stopped")
    assert status.split()[1] == b"400"
    bad = [line for line in process.lines if line["event"] == "bad_http_request"]
    assert [(b["level"], b["peer"]) for b in bad] == [("warning", "127.0.0.1")]
    assert not [line for line in process.lines if line["level"] == "error"]
    assert all("exception" not in line for line in process.lines)
