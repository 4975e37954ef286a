"""A streaming HTTP/1.1 client for the openai engine's upstreams, on asyncio Protocols.

A relay's cost is per upstream read. aiohttp's client hands each read to a
task through a StreamReader: a future, a wake-up and a coroutine per read,
about as much Python as everything else a relayed chunk costs. Here each
read is handed to its :class:`Consumer` inside the protocol's
``data_received``, so an answer's task wakes only when the answer ends, fails
or must wait for its client.

Only what an upstream relay needs, per RFC 9112: a POST with a body of known
length; answers framed by chunked transfer coding, Content-Length or the
connection's end; interim (1xx) answers skipped; keep-alive connections
pooled per origin, up to a limit shared by all origins. No compression
(``Accept-Encoding: identity`` is sent; a compressed answer is a
:class:`ProtocolError`), redirects, proxies or cookies. Silences (before
the head and between reads) are the engine's :class:`~..watchdog.Watchdog`'s.

Split as h11 is: :mod:`.parse` is sans-I/O (the head, and one reader class
per body framing, picked from a table), :mod:`.connection` the
asyncio.Protocol driving it, :mod:`.pool` the keep-alive pool, its limit and
its waiters.
"""

from realtime_daemon.engines.openai.h1.connection import (
    MAX_DISCARD,
    Connection,
    ConnectionLost,
    Consumer,
    StaleConnection,
)
from realtime_daemon.engines.openai.h1.parse import MAX_HEAD, ProtocolError
from realtime_daemon.engines.openai.h1.pool import KEEPALIVE, Origin, Pool

__all__ = [
    "KEEPALIVE",
    "MAX_DISCARD",
    "MAX_HEAD",
    "Connection",
    "ConnectionLost",
    "Consumer",
    "Origin",
    "Pool",
    "ProtocolError",
    "StaleConnection",
]
