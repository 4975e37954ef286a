"""Resumable sessions: their tokens, and the checks a resuming upgrade passes.

A session becomes resumable when its client asks (``session.update`` with
``"resumable": true``): it gets an unguessable token, bound to the identity
the client connected with (its bearer token, when ``--auth-token-file`` is
on). A later upgrade with ``?resume=<token>&after=<last id seen>`` is
checked here, before the handshake; a refusal is an HTTP status:

- 400 ``resume_invalid``: ``after`` is not an envelope id, or one beyond the
  last the session produced;
- 403 ``resume_forbidden``: the token was issued to another identity;
- 404 ``resume_unknown``: no such session (never issued, expired, or ended);
- 410 ``resume_gap``: envelopes after ``after`` are no longer held;
- 409 ``resume_unavailable``: resume is off on this daemon.

The session's host (:class:`~.host.Host`) does the
rest: it keeps the session through a lost connection for ``window`` seconds
and replays what the new connection missed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Protocol

from realtime_daemon.dialects.registry import DIALECTS, DialectSpec, parse_after
from realtime_daemon.session.replay import Ahead, Gap
from realtime_daemon.wire.http import Refusal

__all__ = ["Held", "Resumes", "identity_of"]


class Held(Protocol):
    """What the registry needs of a resumable session's connection."""

    identity: bytes | None

    def buffered(self) -> int:
        """Bytes of envelopes kept for replay."""

    def check_after(self, after: int) -> None:
        """Raises Ahead (``after`` is beyond the last envelope) or Gap (the envelopes
        after it cannot all be replayed)."""

    def take_over(self) -> None:
        """Let go of the connection the session is on, if any: a resume is coming."""


def identity_of(token: str | None) -> bytes | None:
    """What a session remembers of its client's bearer token: a digest, not the token."""
    return None if token is None else hashlib.sha256(token.encode()).digest()


class Resumes:
    """The resumable sessions of one app, by token.

    Args:
        window: seconds a session is held without a connection; 0: resume is off.
        buffer: bytes of envelopes each resumable session keeps for replay.
        unavailable: why resume is off despite a window (e.g. ``--workers``).
        prefix: what tokens start with (``--instance-name``), for proxies to route on.
        dialects: the dialects whose ids ``after`` may be given in.
    """

    def __init__(
        self,
        window: float,
        buffer: int,
        unavailable: str | None = None,
        prefix: str = "",
        dialects: Sequence[DialectSpec] = DIALECTS,
    ) -> None:
        self._dialects = dialects
        self._prefix = f"{prefix}." if prefix else ""
        self.window = window
        self.buffer = buffer
        self.unavailable = unavailable or (
            None if window > 0 else "resume is off on this daemon (--resume-window 0)"
        )
        self._sessions: dict[str, Held] = {}

    def add(self, session: Held) -> str:
        """Register ``session``; its new token."""
        token = self._prefix + secrets.token_urlsafe(32)
        self._sessions[token] = session
        return token

    def buffered(self) -> int:
        """Bytes of envelopes the sessions keep for replay."""
        return sum(session.buffered() for session in self._sessions.values())

    def forget(self, token: str | None) -> None:
        if token is not None:
            self._sessions.pop(token, None)

    def check(
        self, token: str, after_text: str | None, identity: bytes | None
    ) -> tuple[Held, int] | Refusal:
        """The session a resuming upgrade names and the envelope to resume after, or
        why not. The session is taken over from its connection, if it still has one."""
        if self.unavailable is not None:
            return Refusal(409, self.unavailable, "resume_unavailable")
        after = parse_after(self._dialects, after_text)
        if after is None:
            return Refusal(400, "after must be an envelope id: N or event_N", "resume_invalid")
        session = self._sessions.get(token)
        if session is None:
            return Refusal(404, "no such session: unknown, expired or ended", "resume_unknown")
        if session.identity is not None and (
            identity is None or not hmac.compare_digest(identity, session.identity)
        ):
            return Refusal(403, "this session belongs to another identity", "resume_forbidden")
        try:
            session.check_after(after)
        except Ahead as exc:
            return Refusal(400, f"cannot resume after {after}: {exc}", "resume_invalid")
        except Gap as exc:
            return Refusal(410, f"cannot resume after {after}: {exc}", "resume_gap")
        session.take_over()
        return session, after
