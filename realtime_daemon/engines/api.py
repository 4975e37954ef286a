"""Everything an engine author needs, in one import: ``realtime_daemon.engines.api``.

An engine is a class (or any callable) that takes the daemon's
:class:`Config` (and its options, if it declares them: below) and returns an
object with one of these call shapes:

- ``answer(request, context)``: an async iterator of :class:`Envelope`
  (see :class:`Engine`); the simplest, and what :mod:`examples/shout.py`
  shows;
- ``relay(request, context, delivery)``: pushes envelopes into a
  :class:`Delivery` from its upstream's callbacks (see :class:`RelayEngine`);
- ``generate(requests, context)``: the bidirectional interface of earlier
  versions (see :class:`StreamEngine`).

The loader (:mod:`.load`) turns each of them into one call shape when it is
loaded, so the session has one path.

An engine's own options are a ``msgspec.Struct`` (``frozen=True, kw_only=True``)
it names ``Options``: the loader decodes them from ``--engine-option KEY=VALUE``,
``[engine_options]`` or the model's ``[models.options]``, refusing unknown keys
and wrong types before the daemon binds, and calls ``factory(config, options)``
(an :class:`OptionsFactory`); without ``Options``, ``factory(config)``.
:func:`read_options` reads them from a :class:`Config` as the loader does, for
an engine built by hand (in a test, say); :func:`masked_repr` is a ``__repr__``
that keeps secrets out of logs.

A speech-to-text engine (``--stt``) is a callable taking the :class:`Config`
and returning a :class:`Transcriber`: ``transcribe(request, delta)`` turns a
:class:`TranscriptionRequest` into a :class:`Transcript`, or raises
:class:`TranscriptionFailed` with a code (docs/engines.md).

The rest of the daemon is not part of this API.
"""

from realtime_daemon.audio.speech import (
    Transcriber,
    Transcript,
    TranscriptionFailed,
    TranscriptionRequest,
)
from realtime_daemon.config import Config, masked_repr
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
from realtime_daemon.engines.options import EngineOptionError, OptionsFactory, read_options
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
    "EngineOptionError",
    "Envelope",
    "OptionsFactory",
    "RelayEngine",
    "Request",
    "RequestContext",
    "RequestFailed",
    "StreamEngine",
    "Transcriber",
    "Transcript",
    "TranscriptionFailed",
    "TranscriptionRequest",
    "UpstreamDetail",
    "Usage",
    "masked_repr",
    "message_text",
    "read_options",
]
