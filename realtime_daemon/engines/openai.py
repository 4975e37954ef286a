"""The ``openai`` engine: each request streams from an OpenAI-compatible server.

vLLM, SGLang, TGI, llama.cpp's server, Ollama, NVIDIA Dynamo's frontend and
OpenAI itself all serve ``POST /v1/chat/completions`` with Server-Sent
Events. Each request of a session becomes one such POST through one pooled
ClientSession; each upstream chunk becomes the ``data`` of an envelope,
passed through as :class:`msgspec.Raw`, never re-encoded.

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
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import structlog

from ..config import Config
from ..protocol import Envelope, Request
from .base import RequestContext, RequestFailed
from .upstream import UpstreamError, UpstreamStream
from .watchdog import Watchdog

__all__ = ["OpenAIEngine", "UpstreamError"]

logger = structlog.get_logger("realtime_daemon")

_TRUE = msgspec.Raw(b"true")
_DONE = b"[DONE]"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 4096
POOL_LOG_EVERY = 10.0
"""Seconds between two ``upstream_pool_wait`` log lines."""


_body_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()


class OpenAIEngine:
    """Streams each request from an OpenAI-compatible upstream.

    Raises:
        ValueError: no ``upstream_url`` is configured.
    """

    def __init__(self, config: Config) -> None:
        if not config.upstream_url:
            raise ValueError("needs at least one --upstream-url")
        self._urls = tuple(url.rstrip("/") + "/chat/completions" for url in config.upstream_url)
        self._config = config
        self._turn = itertools.count()
        self._session: aiohttp.ClientSession | None = None
        self._pool_waits = 0  # requests that waited for a pool slot, in all
        self._pool_logged = -POOL_LOG_EVERY
        # No sock_read: aiohttp would re-arm a timer on every read; the
        # watchdog checks every stream's silences with one.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=config.upstream_connect_timeout)
        self._watchdog = Watchdog(config.upstream_read_timeout)
        self._headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if config.upstream_api_key:
            self._headers["Authorization"] = f"Bearer {config.upstream_api_key}"
        self._model = (
            msgspec.Raw(_encoder.encode(config.upstream_model)) if config.upstream_model else None
        )

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop; one pool for the daemon.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._config.upstream_max_connections)
            trace = aiohttp.TraceConfig()
            trace.on_connection_queued_start.append(self._pool_full)
            # No cookie jar: cookies an upstream sets for one client's request
            # must not ride along on other clients' requests.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                trace_configs=[trace],
            )
        return self._session

    async def _pool_full(self, *_: object) -> None:
        """A request waits for a pool slot: say so, at most once per POOL_LOG_EVERY seconds."""
        self._pool_waits += 1
        now = time.monotonic()
        if now >= self._pool_logged + POOL_LOG_EVERY:
            logger.warning(
                "upstream_pool_wait",
                limit=self._config.upstream_max_connections,
                waits=self._pool_waits,
            )
            self._pool_logged = now

    async def aclose(self) -> None:
        """Close the connection pool."""
        self._watchdog.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _replicas(self, context: RequestContext) -> list[int]:
        """The session's replicas, its own first: picked round-robin when it starts."""
        replicas: list[int] | None = context.session.state.get(self)
        if replicas is None:
            start = next(self._turn) % len(self._urls)
            replicas = list(range(start, len(self._urls))) + list(range(start))
            context.session.state[self] = replicas
        return replicas

    async def answer(
        self, request: Request, context: RequestContext
    ) -> AsyncIterator[list[Envelope]]:
        """Stream the answer from the session's replica, failing over before the first byte."""
        body = self._body(request)
        replicas = self._replicas(context)
        errors: list[str] = []
        config = self._config
        for replica in list(replicas):
            stream = UpstreamStream(
                self._client(),
                self._urls[replica],
                replica,
                context,
                self._watchdog,
                connect_timeout=config.upstream_connect_timeout,
                read_timeout=config.upstream_read_timeout,
                max_event_size=config.upstream_max_event_size,
            )
            try:
                await stream.open(body, self._headers)
                # A coroutine per upstream read: each batch is what one read completed.
                while (batch := await stream.batch()) is not None:
                    if batch:
                        yield batch
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
