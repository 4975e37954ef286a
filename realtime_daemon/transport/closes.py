"""How a connection ends: the close codes, and the one function that picks the close.

Close codes (see the README's wire contract):

- 1000: the client closed, a bidirectional engine ended the session, or it sat idle;
- 1001: the daemon is shutting down (after a drain), a resume took the session
  over to another connection, or the connection reached ``--max-session-duration``;
- 1003: a binary frame; 1007: a frame that is not a chat-completion request
  (chat dialect; the Realtime dialect answers both in band);
- 1008: the client kept sending over its rate limit, or stopped reading, or its
  key was removed or disabled;
- 1009: a message over ``max_message_size`` (aiohttp closes this one itself);
- 1011: an engine raised.
"""

from __future__ import annotations

import dataclasses

from aiohttp import WSCloseCode

from realtime_daemon.session.scheduler import Ending

__all__ = [
    "CLOSE_TIMEOUT",
    "COMPLETE",
    "MAX_REASON_BYTES",
    "TAKEN_OVER",
    "Close",
    "choose_close",
    "close_reason",
    "may_be_sent",
]

CLOSE_TIMEOUT = 5.0
"""Seconds the closing handshake may take before the transport is cut."""

MAX_REASON_BYTES = 123
"""A Close frame is a control frame: 125 bytes, two of them the code."""


@dataclasses.dataclass(frozen=True)
class Close:
    """How a connection ends.

    Attributes:
        code: the WebSocket close code.
        reason: the close reason, for the frame and the log.
        sent: the connection is already closed (by aiohttp or the peer), so
            nothing is left to send.
    """

    code: int
    reason: str = ""
    sent: bool = False


PEER_GONE = Close(WSCloseCode.ABNORMAL_CLOSURE, "peer gone", sent=True)
SHUTDOWN = Close(WSCloseCode.GOING_AWAY, "server shutting down")
COMPLETE = Close(WSCloseCode.OK, "stream complete")
TAKEN_OVER = Close(WSCloseCode.GOING_AWAY, "session resumed on another connection")
EXPIRED = Close(WSCloseCode.GOING_AWAY, "session expired: --max-session-duration reached")
TOO_SLOW = Close(WSCloseCode.POLICY_VIOLATION, "send timeout: client not reading", sent=True)


def choose_close(read: Close | None, ending: Ending, *, draining: bool) -> Close:
    """The close of a connection, from how its reader and its session ended.

    Args:
        read: how reading ended; None when the reader was stopped (by the
            session ending, or a drain).
        ending: how the session ended.
        draining: whether the daemon is shutting down.
    """
    kind = ending.kind
    if kind == "too_slow":
        return TOO_SLOW
    if kind == "engine_failed":
        return Close(WSCloseCode.INTERNAL_ERROR, f"engine error: {ending.message}")
    if kind == "stream_ended":
        return COMPLETE
    if kind == "revoked":
        return Close(WSCloseCode.POLICY_VIOLATION, ending.message)
    if kind == "expired":
        return EXPIRED
    if read is not None:
        return read
    if kind == "peer_gone":
        return PEER_GONE
    if kind == "shutdown_cut" or draining:
        return SHUTDOWN
    return COMPLETE


def may_be_sent(code: int) -> bool:
    """Whether a peer may send close ``code`` (RFC 6455 7.4.1, 7.4.2)."""
    if code in (1005, 1006, 1015):
        return False
    return 1000 <= code <= 1015 or 3000 <= code <= 4999


def close_reason(text: str) -> bytes:
    """``text`` as UTF-8, cut on a character boundary to fit a Close frame."""
    data = text.encode()
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[:MAX_REASON_BYTES].decode(errors="ignore").encode()
