"""The ``openai`` engine: each request streams from an OpenAI-compatible server.

vLLM, SGLang, TGI, llama.cpp's server, Ollama, NVIDIA Dynamo's frontend and
OpenAI itself all serve ``POST /v1/chat/completions`` with Server-Sent
Events. Each request of a session becomes one such POST on a pooled
keep-alive connection (:mod:`.h1`); each upstream chunk becomes the ``data``
of an envelope, passed through as :class:`msgspec.Raw`, never re-encoded,
and is written to the client in the callback that read it.

- A session sticks to one replica, picked round-robin when it starts.
- Failures before the first chunk fail over to the next replica (connection
  refused or reset, timeouts, 5xx and 429); a 4xx is the request's fault and
  is not retried. Nothing is retried after the first chunk.
- Every failure of a request becomes one error envelope (code
  ``upstream_error``, ``upstream_unreachable``, ``upstream_timeout`` or
  ``upstream_protocol_error``, with the upstream's status and error fields),
  and the session goes on. Clients are told the replica's index, never its
  URL; the log has the URL.
- When the engine is stopped (client gone, drain cut), the upstream
  response is closed at once, so the upstream server sees the disconnect and
  stops generating.
"""

from __future__ import annotations

import itertools
import time

import msgspec
import structlog

from realtime_daemon import __version__
from realtime_daemon.config import Config, masked_repr
from realtime_daemon.config.engine_settings import (
    UpstreamAPIKey,
    UpstreamConnectTimeout,
    UpstreamMaxConnections,
    UpstreamMaxEventSize,
    UpstreamModel,
    UpstreamReadTimeout,
    UpstreamURLs,
)
from realtime_daemon.engines.base import Delivery, RequestContext, RequestFailed
from realtime_daemon.engines.openai.attempt import UpstreamError, UpstreamStream
from realtime_daemon.engines.openai.h1 import Origin, Pool
from realtime_daemon.engines.openai.watchdog import Watchdog
from realtime_daemon.engines.options import read_options
from realtime_daemon.wire.chat import Request

__all__ = ["OpenAIEngine", "OpenAIOptions", "UpstreamError"]

logger = structlog.get_logger("realtime_daemon")

_TRUE = msgspec.Raw(b"true")
POOL_LOG_EVERY = 10.0
"""Seconds between two ``upstream_pool_wait`` log lines."""


_body_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()


class OpenAIOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The openai engine's options; each is also the setting of the same name
    (``--upstream-url``, ...), as in earlier versions (config.engine_settings)."""

    upstream_url: UpstreamURLs = ()
    upstream_api_key: UpstreamAPIKey | None = None
    upstream_model: UpstreamModel | None = None
    upstream_connect_timeout: UpstreamConnectTimeout = 5.0
    upstream_read_timeout: UpstreamReadTimeout = 60.0
    upstream_max_connections: UpstreamMaxConnections = 1000
    upstream_max_event_size: UpstreamMaxEventSize = 4 * 1024 * 1024

    def __repr__(self) -> str:
        return masked_repr(self)  # the API key stays out of reprs and tracebacks


class OpenAIEngine:
    """Streams each request from an OpenAI-compatible upstream.

    Args:
        config: the daemon's settings.
        options: its options; left out, read from ``config`` as the loader reads them.

    Raises:
        ValueError: no ``upstream_url`` is configured, or one is not http(s).
    """

    Options = OpenAIOptions

    def __init__(self, config: Config, options: OpenAIOptions | None = None) -> None:
        if options is None:
            options = read_options(OpenAIOptions, config)
        if not options.upstream_url:
            raise ValueError("needs at least one --upstream-url")
        self.options = options
        self._urls = tuple(url.rstrip("/") + "/chat/completions" for url in options.upstream_url)
        self._origins = tuple(Origin.parse(url) for url in self._urls)
        self._turn = itertools.count()
        self._pool: Pool | None = None
        self._pool_waits = 0  # requests that waited for a pool slot, in all
        self._pool_logged = -POOL_LOG_EVERY
        headers = [
            b"Accept: text/event-stream",
            b"Accept-Encoding: identity",
            b"Content-Type: application/json",
            b"User-Agent: realtime-daemon/" + __version__.encode(),
        ]
        if options.upstream_api_key:
            headers.append(b"Authorization: Bearer " + options.upstream_api_key.encode())
        # Each replica's request head, up to the body's length.
        self._heads = tuple(
            b"POST %b HTTP/1.1\r\nHost: %b\r\n%b\r\nContent-Length: "
            % (o.path.encode(), o.host_header.encode("idna"), b"\r\n".join(headers))
            for o in self._origins
        )
        self._model = (
            msgspec.Raw(_encoder.encode(options.upstream_model)) if options.upstream_model else None
        )

    def _connections(self) -> Pool:
        # Made on first use, inside the running loop; one pool for the daemon.
        if self._pool is None:
            options = self.options
            self._pool = Pool(
                options.upstream_max_connections,
                connect_timeout=options.upstream_connect_timeout,
                watchdog=Watchdog(options.upstream_read_timeout),
                on_wait=self._pool_full,
            )
        return self._pool

    def _pool_full(self) -> None:
        """A request waits for a pool slot: say so, at most once per POOL_LOG_EVERY seconds."""
        self._pool_waits += 1
        now = time.monotonic()
        if now >= self._pool_logged + POOL_LOG_EVERY:
            logger.warning(
                "upstream_pool_wait",
                limit=self.options.upstream_max_connections,
                waits=self._pool_waits,
            )
            self._pool_logged = now

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._pool is not None:
            self._pool.watchdog.close()
            self._pool.close()
            self._pool = None

    def _replicas(self, context: RequestContext) -> list[int]:
        """The session's replicas, its own first: picked round-robin when it starts."""
        replicas: list[int] | None = context.session.state.get(self)
        if replicas is None:
            start = next(self._turn) % len(self._urls)
            replicas = list(range(start, len(self._urls))) + list(range(start))
            context.session.state[self] = replicas
        return replicas

    async def relay(self, request: Request, context: RequestContext, delivery: Delivery) -> None:
        """Relay the answer from the session's replica, failing over before the first byte."""
        body = self._body(request)
        length = b"%d\r\n\r\n" % len(body)
        replicas = self._replicas(context)
        errors: list[str] = []
        options = self.options
        pool = self._connections()
        for replica in list(replicas):
            stream = UpstreamStream(
                pool,
                self._origins[replica],
                replica,
                context,
                delivery,
                connect_timeout=options.upstream_connect_timeout,
                read_timeout=options.upstream_read_timeout,
                max_event_size=options.upstream_max_event_size,
            )
            try:
                await stream.run(b"".join((self._heads[replica], length, body)))
            except UpstreamError as exc:
                errors.append(str(exc))
                logger.warning(
                    "upstream_failed",
                    conn=context.session.session_id,
                    url=self._urls[replica],
                    error=str(exc),
                    detail=exc.log_detail,
                    code=exc.detail.code,
                )
                if exc.retry and replica != replicas[-1]:
                    continue
                raise RequestFailed(
                    exc.detail.code, "; ".join(errors), exc.detail.upstream
                ) from None
            finally:
                stream.close()
            if replica != replicas[0]:
                # The session moves to the replica that answered.
                replicas.remove(replica)
                replicas.insert(0, replica)
            return

    def _body(self, request: Request) -> bytes:
        """The client's request with ``stream`` forced on; every other field untouched."""
        fields = _body_decoder.decode(request.raw)
        fields["stream"] = _TRUE
        if self._model is not None:
            fields["model"] = self._model
        return _encoder.encode(fields)
