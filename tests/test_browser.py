"""A page in headless Chromium: a client secret from its backend, the WebSocket subprotocol,
a text conversation (examples/browser.html, as a person's browser runs it)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from .conftest import Daemon, StartServer
from .test_client_secrets import SECRET_KEY
from .test_keys import KEYS, MODELS, bearer
from .test_shared_limits import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE = Path(__file__).parent.parent / "examples" / "browser.html"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

# What this machine needs of a headless Chromium as root, offline
# (/work/.library/env/machines/python.md: known to work).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class Backend:
    """The page's own web server: it serves the page, mints with its key, takes the report."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.report: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.app = web.Application()
        self.app.router.add_get("/", self._page)
        self.app.router.add_post("/session", self._session)
        self.app.router.add_post("/report", self._report)

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE)

    async def _session(self, request: web.Request) -> web.Response:
        body = {"session": {"type": "realtime", "model": "m1", "instructions": "Be brief."}}
        async with self.daemon.session.post(
            "/v1/realtime/client_secrets", json=body, headers=bearer("alpha-token")
        ) as minted:
            return web.json_response(await minted.json(), status=minted.status)

    async def _report(self, request: web.Request) -> web.Response:
        if not self.report.done():
            self.report.set_result(json.loads(await request.read()))
        return web.Response(text="ok")


async def test_a_page_in_chromium_converses_with_a_client_secret(
    serve_engine: StartServer, tmp_path: Path
) -> None:
    """The page mints through its backend, connects with the subprotocol, and gets its answer."""
    keys, secret = tmp_path / "keys.toml", tmp_path / "secret.key"
    keys.write_text(KEYS)
    secret.write_bytes(SECRET_KEY)
    port = free_port()  # the backend's: the daemon lets its origin in
    daemon = await serve_engine(
        engine=None,
        models=MODELS,
        keys_file=str(keys),
        secret_key_file=str(secret),
        allowed_origin=(f"http://127.0.0.1:{port}",),
    )
    backend = Backend(daemon)
    backend_runner = web.AppRunner(backend.app)
    await backend_runner.setup()
    await web.TCPSite(backend_runner, "127.0.0.1", port).start()
    url = (
        f"http://127.0.0.1:{port}/?daemon=ws://{daemon.host}:{daemon.port}"
        "&model=m1&say=hello%20browser&report=/report"
    )
    assert CHROMIUM is not None
    chromium = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(30):
            report = await backend.report
    finally:
        chromium.kill()
        await chromium.wait()
        await backend_runner.cleanup()
    assert report == {"answer": "hello browser"}
