"""Everything an engine author needs, in one import: ``realtime_daemon.engines.api``.

An engine is a class (or any callable) that takes the daemon's
:class:`Config` and returns an object with one of these call shapes:

- ``answer(request, context)``: an async iterator of :class:`Envelope`
  (see :class:`Engine`); the simplest, and what :mod:`examples/shout.py`
  shows;
- ``relay(request, context, delivery)``: pushes envelopes into a
  :class:`Delivery` from its upstream's callbacks (see :class:`RelayEngine`);
- ``generate(requests, context)``: the bidirectional interface of earlier
  versions (see :class:`StreamEngine`).

The loader (:mod:`.load`) turns each of them into one call shape when it is
loaded, so the session has one path. The rest of the daemon is not part of
this API.
"""

from realtime_daemon.config import Config
from realtime_daemon.engines.base import (
    Context,
    Delivery,
    Engine,
    EngineFactory,
    RelayEngine,
    RequestContext,
    RequestFailed,
    StreamEngine,
)
from realtime_daemon.wire.chat import (
    ChatMessage,
    ChatRequest,
    Delta,
    Envelope,
    Request,
    UpstreamDetail,
    Usage,
    message_text,
)

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "Config",
    "Context",
    "Delivery",
    "Delta",
    "Engine",
    "EngineFactory",
    "Envelope",
    "RelayEngine",
    "Request",
    "RequestContext",
    "RequestFailed",
    "StreamEngine",
    "UpstreamDetail",
    "Usage",
    "message_text",
]
