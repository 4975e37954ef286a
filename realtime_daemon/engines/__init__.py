"""Engines: what answers a request. Plain asyncio, no aiohttp.

:mod:`.api` is the one module an engine author imports. :mod:`.base` defines
the call shapes, :mod:`.load` finds and normalises engines, :mod:`.routes`
maps models to them, :mod:`.stream` adapts bidirectional engines, and
:mod:`.echo` and :mod:`.openai` are the built-in ones; :mod:`.waiters` is the
one waiter primitive, for the layers above too; :mod:`.speech` holds the
speech-to-text engines. Engines may import :mod:`~realtime_daemon.wire`,
:mod:`~realtime_daemon.config` and :mod:`~realtime_daemon.audio` only.
"""

from realtime_daemon.engines.base import Context, Engine, EngineFactory

__all__ = ["Context", "Engine", "EngineFactory"]
