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

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import structlog

from ..config import Config
from ..protocol import Envelope, Request, UpstreamDetail
from .base import RequestContext, RequestFailed
from .sse import EventTooLarge, SSEParser
from .watchdog import Watch, Watchdog

__all__ = ["OpenAIEngine", "UpstreamError"]

logger = structlog.get_logger("realtime_daemon")

_TRUE = msgspec.Raw(b"true")
_DONE = b"[DONE]"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 4096
POOL_LOG_EVERY = 10.0
"""Seconds between two ``upstream_pool_wait`` log lines."""


class _ErrorDetail(msgspec.Struct):
    message: str | None = None
    # Servers differ in what they put here; only strings (and integer codes) are passed on.
    type: Any = None
    code: Any = None
    param: Any = None


class _ChoiceProbe(msgspec.Struct):
    finish_reason: str | None = None


class _ChunkProbe(msgspec.Struct):
    """What the engine reads of an upstream chunk: an ``error`` object, the finish."""

    error: _ErrorDetail | str | None = None
    choices: list[_ChoiceProbe] = []

    @property
    def message(self) -> str | None:
        """The error's message (an error may be a bare string or an object)."""
        if isinstance(self.error, str):
            return self.error
        return self.error.message if self.error is not None else None

    def upstream(self, replica: int, status: int | None) -> UpstreamDetail:
        """The error as the client is told of it."""
        error = self.error if isinstance(self.error, _ErrorDetail) else _ErrorDetail()
        code = error.code if isinstance(error.code, str | int) else None
        return UpstreamDetail(
            replica=replica,
            status=status,
            type=_text(error.type),
            code=code,
            param=_text(error.param),
        )


def _failure(exc: aiohttp.ClientError) -> str:
    """A connection failure in words that name no host: aiohttp's own messages do."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError):
        errno = os_error.errno or 0
        reason = os.strerror(errno) if errno > 0 else os_error.strerror
        if reason:
            return f"{type(exc).__name__}: {reason}"
    return type(exc).__name__


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


_body_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_probe_decoder = msgspec.json.Decoder(_ChunkProbe)
_encoder = msgspec.json.Encoder()


class UpstreamError(RequestFailed):
    """One request's upstream failure.

    Args:
        code: the error code (``upstream_error``, ``upstream_timeout``, ...).
        message: what the client is told: the replica by index, never its URL.
        upstream: the replica, status and the upstream's own error fields.
        retry: whether another replica may succeed (nothing was streamed).
    """

    def __init__(self, code: str, message: str, upstream: UpstreamDetail, *, retry: bool) -> None:
        super().__init__(code, message, upstream)
        self.retry = retry
        self.log_detail: str | None = None  # what only the log may show


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
        for replica in list(replicas):
            try:
                async for batch in self._stream(replica, body, context):
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

    async def _stream(
        self, replica: int, body: bytes, context: RequestContext
    ) -> AsyncIterator[list[Envelope]]:
        """One upstream request's chunks as envelopes, a list per upstream read.

        Raises:
            UpstreamError: the request failed; ``retry`` while nothing was sent.
        """
        name = f"upstream replica {replica}"
        response: aiohttp.ClientResponse | None = None
        watch: Watch | None = None
        read_timeout = self._config.upstream_read_timeout
        streamed = False

        def failed(code: str, what: str) -> UpstreamError:
            upstream = UpstreamDetail(replica=replica)
            return UpstreamError(code, f"{name} {what}", upstream, retry=not streamed)

        try:
            # One timer for the answer's head; its body's silences are the
            # watchdog's (no timer per read).
            async with asyncio.timeout(read_timeout):
                response = await self._client().post(
                    self._urls[replica], data=body, headers=self._headers
                )
            watch = self._watchdog.watch(response.close)
            if response.status // 100 != 2:
                probe, detail = await _error_body(response)
                raise UpstreamError(
                    "upstream_error",
                    f"{name} answered {response.status}: {detail}",
                    probe.upstream(replica, response.status),
                    retry=response.status in _RETRY_STATUSES,
                )
            async for batch in self._chunks(response, watch, context, name, replica):
                streamed = True
                yield batch
        except EventTooLarge as exc:
            error = failed("upstream_protocol_error", f"sent {exc}")
            error.retry = False  # the same request would get the same answer
            raise error from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                what = f"no connection within {self._config.upstream_connect_timeout:g} s"
            elif isinstance(exc, TimeoutError) or (watch is not None and watch.expired):
                silence = "no chunk" if streamed else "no answer"
                what = f"{silence} within {read_timeout:g} s"
            else:
                error = failed("upstream_unreachable", f"connection failed: {_failure(exc)}")
                error.log_detail = str(exc)  # aiohttp's words name the host: the log only
                raise error from None
            raise failed("upstream_timeout", f"timed out: {what}") from None
        finally:
            if watch is not None:
                self._watchdog.forget(watch)
            if response is not None:
                # Closing, not releasing: an unfinished stream drops the
                # connection, which is how the upstream learns to stop.
                response.close()

    async def _chunks(
        self,
        response: aiohttp.ClientResponse,
        watch: Watch,
        context: RequestContext,
        name: str,
        replica: int,
    ) -> AsyncIterator[list[Envelope]]:
        """The answer's chunks, checked, a list per upstream read, until ``[DONE]``.

        Raises:
            UpstreamError: a malformed chunk, an error in the stream, no ``[DONE]``.
            TimeoutError: the watchdog closed the stream.
        """
        parser = SSEParser(self._config.upstream_max_event_size)
        content = response.content
        streamed = False

        def broken(what: str) -> UpstreamError:
            upstream = UpstreamDetail(replica=replica)
            return UpstreamError("upstream_protocol_error", f"{name} {what}", upstream,
                                 retry=not streamed)

        # Per upstream read, not per chunk: every event the bytes just read
        # complete, checked, then handed over as one batch.
        while read := await content.readany():
            watch.touch()
            batch: list[Envelope] = []
            for data in parser.feed(read):
                if data == _DONE:
                    if batch:
                        yield batch
                    return
                try:
                    probe = _probe_decoder.decode(data)
                except msgspec.DecodeError as exc:
                    raise broken(f"sent a malformed chunk: {exc}") from None
                if probe.error is not None:
                    raise UpstreamError(
                        "upstream_error",
                        f"{name} reported an error: {probe.message}",
                        probe.upstream(replica, response.status),
                        retry=False,
                    )
                for choice in probe.choices:
                    if choice.finish_reason is not None:
                        context.finished = True
                batch.append(Envelope(data=msgspec.Raw(data)))
            if batch:
                streamed = True
                yield batch
        if watch.expired:
            raise TimeoutError
        if _DONE not in parser.close():
            raise broken("ended the stream without [DONE]")


async def _error_body(response: aiohttp.ClientResponse) -> tuple[_ChunkProbe, str]:
    """The upstream's own error object and words for a failed request, kept short."""
    raw = await response.content.read(_ERROR_BODY_LIMIT)
    try:
        probe = _probe_decoder.decode(raw)
    except msgspec.DecodeError:
        probe = _ChunkProbe()
    detail = probe.message or raw.decode(errors="replace").strip() or response.reason
    return probe, detail or "no detail"
