"""The reader of a WebSocket: the only caller of ``ws.receive()``.

It puts Text frames into the bounded :class:`~.channel.RequestChannel`
(awaiting room: TCP pushes back on the client) and returns the close that
ended reading; the connection (:mod:`.connection`) decides what that close
means for the session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from realtime_daemon.dialects import Dialect
from realtime_daemon.session.channel import ChannelClosed, RequestChannel
from realtime_daemon.transport.closes import COMPLETE, Close, may_be_sent
from realtime_daemon.transport.ratelimit import TokenBucket
from realtime_daemon.wire.chat import INVALID_UTF8, ErrorDetail, FrameError

__all__ = ["Limits", "read_frames"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one connection may do; see the matching options."""

    rate: float = 0.0
    idle_timeout: float = 0.0
    send_timeout: float = 30.0
    max_concurrent_requests: int = 4
    max_message_size: int = 0

    @property
    def rate_message(self) -> str:
        return f"rate limit: at most {self.rate:g} requests per second; request dropped"

    @property
    def too_big_message(self) -> str:
        # Not aiohttp's words: its limit is ours plus one (it refuses a message of
        # exactly max_msg_size bytes), so it would name a limit nobody set.
        return f"message over the limit of {self.max_message_size} bytes"


IDLE_TIMEOUT = Close(WSCloseCode.OK, "idle timeout")


async def read_frames(
    ws: web.WebSocketResponse[Literal[False]],
    channel: RequestChannel,
    dialect: Dialect,
    limits: Limits,
    busy: Callable[[], bool],
) -> Close:
    """Read ``ws``'s frames into ``channel`` until the client is done; say how it ended.

    Args:
        ws: the WebSocket; this is the only caller of its ``receive()``.
        channel: where frames go (decoded by the dialect).
        dialect: the connection's dialect, for the frames the transport refuses.
        limits: the connection's rate and idle limits.
        busy: whether the session has work (an idle timeout waits for it).
    """
    idle = limits.idle_timeout or None
    rate = _Rate(limits) if limits.rate else None
    while True:
        try:
            msg = await ws.receive(timeout=idle)
        except TimeoutError:
            if busy():
                continue
            return IDLE_TIMEOUT
        kind = msg.type
        if kind is WSMsgType.TEXT:
            close = await _text(msg.data, channel, dialect, rate)
        elif kind is WSMsgType.BINARY:
            close = await _binary(channel, dialect)
        elif kind is WSMsgType.CLOSE:
            close = _close(msg.data)
        else:
            close = _closed(ws, msg.data, limits)
        if close is not None:
            return close


class _Rate:
    """A connection's request rate: its token bucket, and the frames refused in a row."""

    __slots__ = ("bucket", "message", "refused")

    def __init__(self, limits: Limits) -> None:
        self.bucket = TokenBucket(limits.rate)
        self.message = limits.rate_message
        self.refused = 0


async def _text(
    data: bytes, channel: RequestChannel, dialect: Dialect, rate: _Rate | None
) -> Close | None:
    """A Text frame: into the channel, unless over the rate limit or not UTF-8.

    Returns:
        the close that ends reading, or None to read on.
    """
    if rate is not None:
        if not rate.bucket.take():
            return await _over_rate(rate, channel, dialect)
        rate.refused = 0
    try:
        # RFC 6455 8.1: a Text frame is UTF-8 wherever the bytes are; JSON
        # decoding checks only the strings it keeps.
        data.decode()
    except UnicodeDecodeError:
        return Close(WSCloseCode.INVALID_TEXT, f"malformed JSON frame: {INVALID_UTF8}")
    try:
        await channel.put(data)
    except FrameError as exc:
        return Close(WSCloseCode.INVALID_TEXT, f"malformed JSON frame: {exc}")
    except ChannelClosed:
        return COMPLETE
    return None


async def _over_rate(rate: _Rate, channel: RequestChannel, dialect: Dialect) -> Close | None:
    """A Text frame over the rate limit: refused in band before decoding (a flood
    costs no parsing); past a bucket's worth in a row, the connection closes 1008."""
    rate.refused += 1
    if rate.refused > rate.bucket.capacity:
        return Close(WSCloseCode.POLICY_VIOLATION, "request rate limit exceeded")
    detail = ErrorDetail(code="rate_limited", message=rate.message)
    try:
        await channel.put_event(dialect.refused(detail))
    except ChannelClosed:
        return COMPLETE
    return None


async def _binary(channel: RequestChannel, dialect: Dialect) -> Close | None:
    """A Binary frame: the dialect's event for it, or 1003 if it takes none."""
    event = dialect.binary()
    if event is None:
        return Close(WSCloseCode.UNSUPPORTED_DATA, "binary frames not supported")
    try:
        await channel.put_event(event)
    except ChannelClosed:
        return COMPLETE
    return None


def _close(code: int) -> Close:
    """The client's Close frame, with ``code``: reading ends (1002 for a code that is
    never on the wire, RFC 6455 7.4)."""
    if not may_be_sent(code):
        return Close(WSCloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    return Close(WSCloseCode.OK)


def _closed(ws: web.WebSocketResponse[Literal[False]], data: object, limits: Limits) -> Close:
    """CLOSED or ERROR: aiohttp has already closed (EOF, reset, or a protocol error:
    an oversized message, closed 1009, a broken frame, 1002)."""
    # For an error, the code it sent is the error's: ws.close_code is by now
    # whatever the peer answered, or 1006.
    if isinstance(data, WebSocketError):
        code = data.code
    else:
        code = ws.close_code or WSCloseCode.ABNORMAL_CLOSURE
    reason = str(data or "peer gone")
    if code == WSCloseCode.MESSAGE_TOO_BIG and limits.max_message_size:
        reason = limits.too_big_message
    return Close(code, reason, sent=True)
