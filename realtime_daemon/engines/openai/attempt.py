"""One upstream request of the openai engine: its status, then its chunks, read by read.

:class:`UpstreamStream` is the per-attempt half of the engine, the
:class:`~.h1.Consumer` of one answer: each read the connection hands it is
parsed in the connection's callback, and every chunk it completes is
checked, wrapped and handed to the session's :class:`~.base.Delivery` at
once. The attempt's task (:meth:`UpstreamStream.run`) wakes only when the
answer ends or fails, or when the client lags (reading is paused until it
catches up). Every failure becomes an :class:`UpstreamError` that says
whether another replica may still be asked (nothing was streamed yet).
"""

from __future__ import annotations

import asyncio
import os
import ssl

import msgspec

from realtime_daemon.engines.base import Delivery, RequestContext, RequestFailed
from realtime_daemon.engines.openai.h1 import (
    Connection,
    ConnectionLost,
    Origin,
    Pool,
    ProtocolError,
    StaleConnection,
)
from realtime_daemon.engines.openai.sse import EventTooLarge, SSEParser
from realtime_daemon.wire.chat import Envelope, UpstreamDetail
from realtime_daemon.wire.chunks import ChunkProbe, ErrorProbe, probe_decoder

__all__ = ["UpstreamError", "UpstreamStream"]

_DONE = b"[DONE]"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 4096


def _upstream(probe: ChunkProbe, replica: int, status: int | None) -> UpstreamDetail:
    """An upstream's error as the client is told of it (only strings, and integer
    codes, are passed on)."""
    error = probe.error if isinstance(probe.error, ErrorProbe) else ErrorProbe()
    code = error.code if isinstance(error.code, str | int) else None
    return UpstreamDetail(
        replica=replica,
        status=status,
        type=_text(error.type),
        code=code,
        param=_text(error.param),
    )


def _failure(exc: BaseException) -> str:
    """A connection failure in words that name no host."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{type(exc).__name__}: {exc.verify_message}"
    if isinstance(exc, OSError):
        errno = exc.errno or 0
        reason = os.strerror(errno) if errno > 0 else exc.strerror
        if reason:
            return f"{type(exc).__name__}: {reason}"
    return type(exc).__name__


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


_LAG = "lag"  # the client lags: reading is paused until it caught up
_END = "end"  # the answer was read to [DONE]


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
    """One request to one replica, read in its connection's callbacks.

    Args:
        pool: the engine's connection pool.
        origin: the replica's origin and path.
        replica: its index (what clients are told, never the URL).
        context: the request's context (``finished`` is set here).
        delivery: where the answer's chunks go.
        connect_timeout: for the message of a connect timeout.
        read_timeout: for the message of a read timeout (the pool's watchdog
            keeps it).
        max_event_size: the SSE parser's limit.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection",
        "_context",
        "_delivery",
        "_error_body",
        "_loop",
        "_origin",
        "_outcome",
        "_parser",
        "_pool",
        "_read_timeout",
        "_reading",
        "_reason",
        "_status",
        "_waiter",
        "name",
        "replica",
        "streamed",
    )

    def __init__(
        self,
        pool: Pool,
        origin: Origin,
        replica: int,
        context: RequestContext,
        delivery: Delivery,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_event_size: int,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self.replica = replica
        self.name = f"upstream replica {replica}"
        self._context = context
        self._delivery = delivery
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._parser = SSEParser(max_event_size)
        self._loop = asyncio.get_running_loop()
        self._connection: Connection | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._outcome: str | BaseException | None = None
        self._status = 0
        self._reason = ""
        self._error_body: bytearray | None = None  # a failed answer's body, as read
        self._reading = False  # the answer is still being read
        self.streamed = False

    def _failed(self, code: str, what: str) -> UpstreamError:
        upstream = UpstreamDetail(replica=self.replica)
        return UpstreamError(code, f"{self.name} {what}", upstream, retry=not self.streamed)

    async def run(self, request: bytes) -> None:
        """Send the request and relay its answer to the end.

        Raises:
            UpstreamError: no answer, not a 2xx one, a malformed or failed one.
        """
        fresh = False
        while True:
            self._reading = True
            try:
                self._connection = await self._pool.send(self._origin, request, self, fresh=fresh)
            except TimeoutError:
                raise self._failed(
                    "upstream_timeout",
                    f"timed out: no connection within {self._connect_timeout:g} s",
                ) from None
            except OSError as exc:
                error = self._failed("upstream_unreachable", f"connection failed: {_failure(exc)}")
                error.log_detail = str(exc)  # may name the host: the log only
                raise error from None
            try:
                await self._relayed()
                return
            except StaleConnection:
                fresh = True  # dropped while idle: once more, on a new connection

    async def _relayed(self) -> None:
        """Wait for the answer's end, and for the client while it lags."""
        connection = self._connection
        assert connection is not None
        while True:
            if self._outcome is None:
                self._waiter = self._loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            outcome, self._outcome = self._outcome, None
            if outcome is _END:
                return
            if outcome is _LAG:
                await self._delivery.ready()
                connection.resume_reading()
                continue
            assert isinstance(outcome, BaseException)
            raise outcome

    def _signal(self, outcome: str | BaseException) -> None:
        """Wake the task: an end or failure supersedes a lag not yet seen to."""
        if self._outcome is None or self._outcome is _LAG:
            self._outcome = outcome
        if outcome is not _LAG:
            self._reading = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- h1.Consumer: called in the connection's callbacks ------------------------------

    def head(self, status: int, reason: str, media_type: str) -> None:
        self._status = status
        if status // 100 != 2:
            self._error_body = bytearray()  # the upstream's words, for the error
            self._reason = reason

    def body(self, data: bytes) -> None:
        if self._error_body is not None:
            self._error_body += data
            if len(self._error_body) >= _ERROR_BODY_LIMIT:
                self._stop(self._refused())  # the rest is not read
            return
        try:
            events = self._parser.feed(data)
            batch: list[Envelope] = []
            for event in events:
                if event == _DONE:
                    # Anything after [DONE] is not relayed; the connection
                    # reads the body's end on its own, to be kept.
                    assert self._connection is not None
                    self._connection.discard()
                    self._signal(_END)
                    break
                batch.append(self._checked(event))
            if batch:
                self.streamed = True
                if self._delivery.send(batch) and self._reading:
                    assert self._connection is not None
                    self._connection.pause_reading()
                    self._signal(_LAG)
        except EventTooLarge as exc:
            error = self._failed("upstream_protocol_error", f"sent {exc}")
            error.retry = False  # the same request would get the same answer
            self._stop(error)
        except Exception as exc:  # raised in the task, not in the callback
            self._stop(exc)

    def end(self) -> None:
        if self._error_body is not None:
            self._signal(self._refused())
        elif self._reading:
            try:
                ended = _DONE in self._parser.close()
            except EventTooLarge:
                ended = False
            if ended:
                self._signal(_END)
            else:
                what = "ended the stream without [DONE]"
                self._signal(self._failed("upstream_protocol_error", what))

    def failed(self, exc: Exception) -> None:
        if isinstance(exc, StaleConnection):
            self._signal(exc)
        elif isinstance(exc, TimeoutError):
            silence = "no chunk" if self.streamed else "no answer"
            what = f"{silence} within {self._read_timeout:g} s"
            self._signal(self._failed("upstream_timeout", f"timed out: {what}"))
        elif isinstance(exc, ProtocolError):
            self._signal(self._failed("upstream_protocol_error", str(exc)))
        elif isinstance(exc, ConnectionLost):
            self._signal(self._failed("upstream_unreachable", str(exc)))
        else:
            what = f"connection failed: {_failure(exc)}"
            self._signal(self._failed("upstream_unreachable", what))

    # -- the answer's checks -----------------------------------------------------------

    def _stop(self, exc: BaseException) -> None:
        """Fail the answer from a callback: the connection is dropped."""
        if self._connection is not None:
            self._connection.abort()
        self._signal(exc)

    def _refused(self) -> UpstreamError:
        """A non-2xx answer, with the upstream's own error object and words, kept short."""
        assert self._error_body is not None
        raw = bytes(self._error_body[:_ERROR_BODY_LIMIT])
        try:
            probe = probe_decoder.decode(raw)
        except msgspec.DecodeError:
            probe = ChunkProbe()
        detail = probe.message or raw.decode(errors="replace").strip() or self._reason
        status = self._status
        return UpstreamError(
            "upstream_error",
            f"{self.name} answered {status}: {detail or 'no detail'}",
            _upstream(probe, self.replica, status),
            retry=status in _RETRY_STATUSES,
        )

    def _checked(self, data: bytes) -> Envelope:
        """One chunk, as is, once it is known to be JSON and no error."""
        try:
            probe = probe_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise self._failed(
                "upstream_protocol_error", f"sent a malformed chunk: {exc}"
            ) from None
        if probe.error is not None:
            raise UpstreamError(
                "upstream_error",
                f"{self.name} reported an error: {probe.message}",
                _upstream(probe, self.replica, self._status),
                retry=False,
            )
        if probe.finished:
            self._context.finished = True
        return Envelope(data=msgspec.Raw(data))

    def close(self) -> None:
        """An answer not read to its end drops its connection: that is how the
        upstream learns to stop."""
        if self._reading and self._connection is not None:
            self._connection.abort()
