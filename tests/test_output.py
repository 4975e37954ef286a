"""The transport's output: aiohttp's private drain, fenced, and no compression."""

from __future__ import annotations

import asyncio
import gc
import socket

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol

from realtime_daemon.server.app import STATE
from realtime_daemon.transport.aiohttp_private import wait_writable

from .conftest import PATH, Client, StartServer, content, receive_answer, request


async def paused_protocol() -> tuple[BaseProtocol, socket.socket, asyncio.Transport]:
    """aiohttp's protocol on a real socket pair whose far end reads nothing, written
    until the transport pauses it."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, protocol = await loop.create_connection(lambda: BaseProtocol(loop), sock=ours)
    transport.set_write_buffer_limits(high=4096)
    while not protocol.writing_paused:
        transport.write(b"x" * 65536)
    return protocol, theirs, transport


async def test_wait_writable_waits_until_the_peer_reads() -> None:
    """aiohttp's _drain_helper waits while the transport is paused, and returns once it resumes."""
    protocol, theirs, transport = await paused_protocol()
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(wait_writable(protocol))
    await asyncio.sleep(0)  # one pass: the waiter is parked, not done
    assert not waiting.done()
    async with asyncio.timeout(5):
        while not waiting.done():
            await loop.sock_recv(theirs, 1 << 20)
        await waiting
    transport.close()
    theirs.close()


async def test_wait_writable_raises_once_the_connection_is_lost() -> None:
    """A wait ends when the connection is lost; a wait after that raises ConnectionError."""
    protocol, theirs, transport = await paused_protocol()
    waiting = asyncio.create_task(wait_writable(protocol))
    transport.abort()
    theirs.close()
    async with asyncio.timeout(2):
        await waiting  # woken by connection_lost
    with pytest.raises(ConnectionError):
        await wait_writable(protocol)


async def test_permessage_deflate_offered_by_a_client_is_declined(client: Client) -> None:
    """Frames are written by hand, uncompressed: a client offering compression gets none."""
    async with client.ws_connect(PATH, compress=15) as ws:
        assert ws.compress == 0
        await ws.send_json(request("plain"))
        assert content(await receive_answer(ws)) == "plain"


async def test_closed_connections_are_freed_at_close(serve_engine: StartServer) -> None:
    """A connection closed by the daemon leaves no WebSocketResponse alive behind it."""
    client = await serve_engine(heartbeat=20.0)
    for _ in range(10):
        async with client.ws_connect(PATH) as ws:  # aiohttp's client answers Close at once
            await ws.send_str("not json")
            assert (await ws.receive()).data == 1007
    async with asyncio.timeout(2):
        await client.app[STATE].connections.wait_closed()
    async with client.get("/health") as response:  # the loop has run past every close
        assert response.status == 200
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, web.WebSocketResponse)]
    assert alive == []
