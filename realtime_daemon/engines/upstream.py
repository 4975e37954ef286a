"""One upstream request of the openai engine: its answer's head, then its chunks, read by read.

:class:`UpstreamStream` is the per-attempt half of the engine: it posts the
request, checks the answer's status, and then, on each call of
:meth:`UpstreamStream.batch`, reads once from the upstream and returns every
chunk that read completed, checked and wrapped. It is a coroutine per read,
not a stack of async generators, because a relay's cost is per read. Every
failure becomes an :class:`UpstreamError` that says whether another replica
may still be asked (nothing was streamed yet).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp
import msgspec

from ..protocol import Envelope, UpstreamDetail
from .base import RequestContext, RequestFailed
from .sse import EventTooLarge, SSEParser
from .watchdog import Watch, Watchdog

__all__ = ["UpstreamError", "UpstreamStream"]

_DONE = b"[DONE]"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 4096


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


def _failure(exc: BaseException) -> str:
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


_probe_decoder = msgspec.json.Decoder(_ChunkProbe)


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


class UpstreamStream:
    """One request to one replica.

    Args:
        client: the engine's pool.
        url: the replica's ``/chat/completions``.
        replica: its index (what clients are told, never the URL).
        context: the request's context (``finished`` is set here).
        watchdog: the engine's read-timeout watchdog.
        connect_timeout: for the message of a connect timeout.
        read_timeout: silence allowed before the head, and between reads.
        max_event_size: the SSE parser's limit.
    """

    __slots__ = (
        "_client",
        "_connect_timeout",
        "_context",
        "_parser",
        "_read_timeout",
        "_response",
        "_url",
        "_watch",
        "_watchdog",
        "done",
        "name",
        "replica",
        "streamed",
    )

    def __init__(
        self,
        client: aiohttp.ClientSession,
        url: str,
        replica: int,
        context: RequestContext,
        watchdog: Watchdog,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_event_size: int,
    ) -> None:
        self._client = client
        self._url = url
        self.replica = replica
        self.name = f"upstream replica {replica}"
        self._context = context
        self._watchdog = watchdog
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._parser = SSEParser(max_event_size)
        self._response: aiohttp.ClientResponse | None = None
        self._watch: Watch | None = None
        self.streamed = False
        self.done = False

    def _failed(self, code: str, what: str) -> UpstreamError:
        upstream = UpstreamDetail(replica=self.replica)
        return UpstreamError(code, f"{self.name} {what}", upstream, retry=not self.streamed)

    def _mapped(self, exc: BaseException) -> UpstreamError:
        """A timeout, connection failure or oversized event as the client is told of it."""
        if isinstance(exc, EventTooLarge):
            error = self._failed("upstream_protocol_error", f"sent {exc}")
            error.retry = False  # the same request would get the same answer
            return error
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            what = f"no connection within {self._connect_timeout:g} s"
        elif isinstance(exc, TimeoutError) or (self._watch is not None and self._watch.expired):
            silence = "no chunk" if self.streamed else "no answer"
            what = f"{silence} within {self._read_timeout:g} s"
        else:
            error = self._failed("upstream_unreachable", f"connection failed: {_failure(exc)}")
            error.log_detail = str(exc)  # aiohttp's words name the host: the log only
            return error
        return self._failed("upstream_timeout", f"timed out: {what}")

    async def open(self, body: bytes, headers: dict[str, str]) -> None:
        """Post the request and check the answer's status.

        Raises:
            UpstreamError: no answer, or not a 2xx one.
        """
        try:
            # One timer for the answer's head; its body's silences are the
            # watchdog's (no timer per read).
            async with asyncio.timeout(self._read_timeout):
                response = await self._client.post(self._url, data=body, headers=headers)
            self._response = response
            self._watch = self._watchdog.watch(response.close)
            if response.status // 100 != 2:
                probe, detail = await _error_body(response)
                raise UpstreamError(
                    "upstream_error",
                    f"{self.name} answered {response.status}: {detail}",
                    probe.upstream(self.replica, response.status),
                    retry=response.status in _RETRY_STATUSES,
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._mapped(exc) from None

    async def batch(self) -> list[Envelope] | None:
        """The chunks one read from the upstream completes (perhaps none); None once
        the answer ended with ``[DONE]``.

        Raises:
            UpstreamError: a malformed chunk, an error in the stream, a silence
                past the read timeout, a lost connection, no ``[DONE]``.
        """
        response, watch = self._response, self._watch
        assert response is not None and watch is not None
        if self.done:
            return None
        try:
            read = await response.content.readany()
            if not read:
                if watch.expired:
                    raise TimeoutError
                if _DONE not in self._parser.close():
                    raise self._failed("upstream_protocol_error", "ended the stream without [DONE]")
                return None
            watch.touch()
            events = self._parser.feed(read)
        except (TimeoutError, aiohttp.ClientError, EventTooLarge) as exc:
            raise self._mapped(exc) from None
        batch: list[Envelope] = []
        for data in events:
            if data == _DONE:
                self.done = True  # anything after [DONE] is not read
                return batch or None
            batch.append(self._checked(data, response.status))
        if batch:
            self.streamed = True
        return batch

    def _checked(self, data: bytes, status: int) -> Envelope:
        """One chunk, as is, once it is known to be JSON and no error."""
        try:
            probe = _probe_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise self._failed(
                "upstream_protocol_error", f"sent a malformed chunk: {exc}"
            ) from None
        if probe.error is not None:
            raise UpstreamError(
                "upstream_error",
                f"{self.name} reported an error: {probe.message}",
                probe.upstream(self.replica, status),
                retry=False,
            )
        for choice in probe.choices:
            if choice.finish_reason is not None:
                self._context.finished = True
        return Envelope(data=msgspec.Raw(data))

    def close(self) -> None:
        """Closing, not releasing: an unfinished stream drops the connection, which is
        how the upstream learns to stop."""
        if self._watch is not None:
            self._watchdog.forget(self._watch)
        if self._response is not None:
            self._response.close()


async def _error_body(response: aiohttp.ClientResponse) -> tuple[_ChunkProbe, str]:
    """The upstream's own error object and words for a failed request, kept short."""
    raw = await response.content.read(_ERROR_BODY_LIMIT)
    try:
        probe = _probe_decoder.decode(raw)
    except msgspec.DecodeError:
        probe = _ChunkProbe()
    detail = probe.message or raw.decode(errors="replace").strip() or response.reason
    return probe, detail or "no detail"
