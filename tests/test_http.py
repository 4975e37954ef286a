"""The plain HTTP endpoints beside the WebSocket."""

from __future__ import annotations

import os

from .conftest import PATH, Client, StartServer


async def test_health_reports_status_engine_and_connections(client: Client) -> None:
    """GET /health answers 200 with status, engine, routes, open connections and the pid."""
    async with client.ws_connect(PATH), client.get("/health") as response:
        assert response.status == 200
        body = await response.json()
    assert body == {
        "status": "ok",
        "engine": "echo",
        "routes": {"*": "echo"},
        "connections": 1,
        "pid": os.getpid(),
    }


async def test_live_answers_200(client: Client) -> None:
    """GET /live answers 200."""
    async with client.get("/live") as response:
        assert response.status == 200
        assert await response.json() == {"status": "alive"}


async def test_plain_get_on_websocket_path_is_426(client: Client) -> None:
    """A GET on the WebSocket path without an upgrade answers 426 with a sentence."""
    async with client.get(PATH) as response:
        assert response.status == 426
        assert response.headers["Upgrade"] == "websocket"
        assert "WebSocket" in await response.text()


async def test_broken_handshake_is_400(client: Client) -> None:
    """An upgrade without Sec-WebSocket-Key is refused with 400."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    async with client.get(PATH, headers=headers) as response:
        assert response.status == 400


async def test_other_paths_are_404(client: Client) -> None:
    """Paths the daemon does not serve answer 404."""
    async with client.get("/v1/chat/completions") as response:
        assert response.status == 404


async def test_websocket_path_is_configurable(serve_engine: StartServer) -> None:
    """--path moves the WebSocket; the default path is then 404."""
    client = await serve_engine(path="/ws")
    async with client.ws_connect("/ws") as ws:
        assert not ws.closed
    async with client.get(PATH) as response:
        assert response.status == 404
