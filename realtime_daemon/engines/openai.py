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
- Every failure of a request becomes one error envelope, and the session
  goes on with its next request.
- When the engine is stopped (client gone, drain cut), the upstream
  response is closed at once, so the upstream server sees the disconnect and
  stops generating.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import aiohttp
import msgspec

from ..config import Config
from ..protocol import Envelope, Request
from .base import Context
from .sse import sse_data

__all__ = ["OpenAIEngine", "UpstreamError"]

_TRUE = msgspec.Raw(b"true")
_DONE = b"[DONE]"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 4096


class _ErrorDetail(msgspec.Struct):
    message: str | None = None


class _ChunkProbe(msgspec.Struct):
    """The only part of an upstream chunk the engine reads: an ``error`` object."""

    error: _ErrorDetail | str | None = None

    @property
    def message(self) -> str | None:
        """The error's message (an error may be a bare string or an object)."""
        if isinstance(self.error, str):
            return self.error
        return self.error.message if self.error is not None else None


_body_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_probe_decoder = msgspec.json.Decoder(_ChunkProbe)
_encoder = msgspec.json.Encoder()


class UpstreamError(Exception):
    """One request's upstream failure; the message is what the client is told.

    Args:
        message: what happened, with the replica, status and upstream message.
        retry: whether another replica may succeed (nothing was streamed).
    """

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


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
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.upstream_connect_timeout,
            sock_read=config.upstream_read_timeout,
        )
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
            # No cookie jar: cookies an upstream sets for one client's request
            # must not ride along on other clients' requests.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def generate(
        self, requests: AsyncIterator[Request], context: Context
    ) -> AsyncIterator[Envelope]:
        """Answer each request from the session's replica, failing over before the first byte."""
        start = next(self._turn) % len(self._urls)
        replicas = list(self._urls[start:] + self._urls[:start])
        async for request in requests:
            body = self._body(request)
            errors: list[str] = []
            for url in list(replicas):
                try:
                    async for envelope in self._stream(url, body):
                        yield envelope
                except UpstreamError as exc:
                    errors.append(str(exc))
                    if exc.retry and url != replicas[-1]:
                        continue
                    yield Envelope(event="error", comment=["; ".join(errors)])
                else:
                    if url != replicas[0]:
                        # The session moves to the replica that answered.
                        replicas.remove(url)
                        replicas.insert(0, url)
                break
            if context.is_stopped():
                return

    def _body(self, request: Request) -> bytes:
        """The client's request with ``stream`` forced on; every other field untouched."""
        fields = _body_decoder.decode(request.raw)
        fields["stream"] = _TRUE
        if self._model is not None:
            fields["model"] = self._model
        return _encoder.encode(fields)

    async def _stream(self, url: str, body: bytes) -> AsyncIterator[Envelope]:
        """One upstream request's chunks as envelopes.

        Raises:
            UpstreamError: the request failed; ``retry`` while nothing was sent.
        """
        streamed = False
        response: aiohttp.ClientResponse | None = None
        try:
            response = await self._client().post(url, data=body, headers=self._headers)
            if response.status // 100 != 2:
                detail = await _error_message(response)
                raise UpstreamError(
                    f"upstream {url} answered {response.status}: {detail}",
                    retry=response.status in _RETRY_STATUSES,
                )
            async for data in sse_data(response.content.iter_any()):
                if data == _DONE:
                    return
                try:
                    probe = _probe_decoder.decode(data)
                except msgspec.DecodeError as exc:
                    raise UpstreamError(
                        f"upstream {url} sent a malformed chunk: {exc}", retry=not streamed
                    ) from None
                if probe.error is not None:
                    raise UpstreamError(
                        f"upstream {url} reported an error: {probe.message}", retry=False
                    )
                streamed = True
                yield Envelope(data=msgspec.Raw(data))
            raise UpstreamError(
                f"upstream {url} ended the stream without [DONE]", retry=not streamed
            )
        except TimeoutError as exc:
            # aiohttp's timeouts are TimeoutErrors (and ClientConnectionErrors).
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                what = f"no connection within {self._config.upstream_connect_timeout:g} s"
            else:
                silence = "no chunk" if streamed else "no answer"
                what = f"{silence} within {self._config.upstream_read_timeout:g} s"
            raise UpstreamError(f"upstream {url} timed out: {what}", retry=not streamed) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"upstream {url} connection failed: {exc or type(exc).__name__}", retry=not streamed
            ) from None
        finally:
            if response is not None:
                # Closing, not releasing: an unfinished stream drops the
                # connection, which is how the upstream learns to stop.
                response.close()


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """The upstream's own words for a failed request, kept short."""
    raw = await response.content.read(_ERROR_BODY_LIMIT)
    try:
        message = _probe_decoder.decode(raw).message
    except msgspec.DecodeError:
        message = None
    return message or raw.decode(errors="replace").strip() or response.reason or "no detail"

