"""The reader of a WebSocket: the only caller of ``ws.receive()``.

It puts Text frames into the bounded :class:`~.channel.RequestChannel`
(awaiting room: TCP pushes back on the client) and returns the close that
ended reading; the connection (:mod:`.handler`) decides what that close
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
    bucket = TokenBucket(limits.rate) if limits.rate else None
    refused = 0
    while True:
        try:
            msg = await ws.receive(timeout=idle)
        except TimeoutError:
            if busy():
                continue
            return Close(WSCloseCode.OK, "idle timeout")
        if msg.type is WSMsgType.TEXT:
            if bucket is not None and not bucket.take():
                # Refused before decoding: a flood costs no parsing.
                refused += 1
                if refused > bucket.capacity:
                    return Close(WSCloseCode.POLICY_VIOLATION, "request rate limit exceeded")
                detail = ErrorDetail(code="rate_limited", message=limits.rate_message)
                try:
                    await channel.put_event(dialect.refused(detail))
                except ChannelClosed:
                    return COMPLETE
                continue
            refused = 0
            try:
                # RFC 6455 8.1: a Text frame is UTF-8 wherever the bytes
                # are; JSON decoding checks only the strings it keeps.
                msg.data.decode()
            except UnicodeDecodeError:
                return Close(WSCloseCode.INVALID_TEXT, f"malformed JSON frame: {INVALID_UTF8}")
            try:
                await channel.put(msg.data)
            except FrameError as exc:
                return Close(WSCloseCode.INVALID_TEXT, f"malformed JSON frame: {exc}")
            except ChannelClosed:
                return COMPLETE
        elif msg.type is WSMsgType.BINARY:
            event = dialect.binary()
            if event is None:
                return Close(WSCloseCode.UNSUPPORTED_DATA, "binary frames not supported")
            try:
                await channel.put_event(event)
            except ChannelClosed:
                return COMPLETE
        elif msg.type is WSMsgType.CLOSE:
            if not may_be_sent(msg.data):
                # RFC 6455 7.4: these codes never appear on the wire.
                return Close(WSCloseCode.PROTOCOL_ERROR, f"invalid close code {msg.data}")
            return Close(WSCloseCode.OK)
        else:
            # CLOSED or ERROR: aiohttp has already closed (EOF, reset, or a
            # protocol error: an oversized message, closed 1009, a broken
            # frame, 1002). For an error, the code it sent is the error's:
            # ws.close_code is by now whatever the peer answered, or 1006.
            data = msg.data
            if isinstance(data, WebSocketError):
                code = data.code
            else:
                code = ws.close_code or WSCloseCode.ABNORMAL_CLOSURE
            reason = str(data or "peer gone")
            if code == WSCloseCode.MESSAGE_TOO_BIG and limits.max_message_size:
                reason = limits.too_big_message
            return Close(code, reason, sent=True)
