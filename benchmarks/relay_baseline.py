"""A bare aiohttp relay: what a user would hand-write instead of the daemon's openai engine.

aiohttp WebSocket server, one aiohttp ClientSession for the upstream, each
request POSTed with ``stream: true``, each SSE ``data:`` line sent on as
``{"data": <chunk>, "id": "<n>"}`` with one ``send_str`` per chunk; uvloop.
No validation, backpressure, timeouts, errors or heartbeats.

    python benchmarks/relay_baseline.py PORT UPSTREAM_BASE_URL
"""

from __future__ import annotations

import sys

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
CLIENT = web.AppKey("client", aiohttp.ClientSession)


async def relay(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    client, url = request.app[CLIENT], request.app[UPSTREAM]
    n = 0
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            break
        body = msg.data[:-1] + ', "stream": true}'
        async with client.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            async for line in response.content:
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                n += 1
                await ws.send_str(f'{{"data":{line[6:].rstrip().decode()},"id":"{n}"}}')
    return ws


async def start(app: web.Application) -> None:
    app[CLIENT] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def stop(app: web.Application) -> None:
    await app[CLIENT].close()


def main() -> None:
    app = web.Application()
    app[UPSTREAM] = sys.argv[2].rstrip("/") + "/chat/completions"
    app.router.add_get("/v1/realtime", relay)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
