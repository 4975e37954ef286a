"""The transport: the only aiohttp WebSocket code.

One WebSocket of a session: its reader (the only ``ws.receive()`` caller),
its coalescing output, its one close, and the fence around aiohttp's private
API. It may import :mod:`~realtime_daemon.session` and the layers below it;
the server above it upgrades connections and hands them here.
"""
