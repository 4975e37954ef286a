"""The daemon's only uses of aiohttp's private API, fenced here.

Each works around something aiohttp offers no public way to do;
``tests/test_output.py`` fails if aiohttp changes what they rely on.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from aiohttp.base_protocol import BaseProtocol

__all__ = ["stop_heartbeat", "wait_writable"]


async def wait_writable(protocol: BaseProtocol) -> None:
    """Wait until ``protocol``'s transport is below its high-water mark.

    aiohttp offers no public wait for a paused transport; ``_drain_helper``
    is what its own WebSocket writer awaits.

    Raises:
        ConnectionError: the connection is lost (or was already).
    """
    await protocol._drain_helper()


def stop_heartbeat(ws: web.WebSocketResponse[Literal[False]]) -> None:
    """Stop ``ws``'s heartbeat for good, once it is closed.

    aiohttp (3.14) re-arms the heartbeat timer for data that arrives after
    the close, the client's Close reply included
    (``WebSocketResponse._on_data_received`` does not check ``closed``); the
    timer then holds the response, its request, parser and buffers for 1.5
    heartbeats. Clearing the interval makes every re-arm a no-op.
    """
    ws._heartbeat = None
    ws._cancel_heartbeat()
