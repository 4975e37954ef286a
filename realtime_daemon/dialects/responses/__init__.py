"""The OpenAI Responses API's WebSocket mode (``GET /v1/responses``), in front of any engine.

:mod:`.dialect` reads ``response.create`` events and keeps the connection's
chains; :mod:`.request` checks a create and makes its chat-completion
request; :mod:`.items` checks input items and says them as chat messages;
:mod:`.response` writes one response's events; :mod:`.store` keeps chains,
on the connection and in the response store (memory, or Redis).
"""

from realtime_daemon.dialects.responses.dialect import NAME, ResponsesDialect
from realtime_daemon.dialects.responses.store import MemoryStore, RedisStore, ResponseStore

__all__ = ["NAME", "MemoryStore", "RedisStore", "ResponseStore", "ResponsesDialect"]
