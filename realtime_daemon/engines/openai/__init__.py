"""The ``openai`` engine: each request streams from an OpenAI-compatible server.

:mod:`.engine` is the engine, :mod:`.attempt` one upstream request,
:mod:`.sse` the event-stream parser, :mod:`.watchdog` the read timeouts and
:mod:`.h1` the HTTP/1.1 client it relays on. Plain asyncio, no aiohttp.
"""

from realtime_daemon.engines.openai.attempt import UpstreamError
from realtime_daemon.engines.openai.engine import OpenAIEngine

__all__ = ["OpenAIEngine", "UpstreamError"]
