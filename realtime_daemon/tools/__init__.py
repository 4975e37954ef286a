"""Client tools of the command line: ``realtime-daemon chat`` and ``bench``.

WebSocket clients of a running daemon, on aiohttp's client. They import
nothing of the daemon's server side; only :mod:`~realtime_daemon.cli`
imports them.
"""
