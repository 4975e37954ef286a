"""What a session may do under the key it connected with: models, quotas, usage.

The server makes one :class:`Grant` per session whose client presented a
named key (or a client secret minted with one); the session asks it before
each request starts and tells it when each answer ends, and a dialect asks
it whether a model named in band is allowed and what the rate limits are.
Without keys there is no grant, and nothing is checked or counted. Types
only: the server's :mod:`~realtime_daemon.server.quotas` implements it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from realtime_daemon.wire.chat import ErrorDetail, Usage

__all__ = ["MODEL_NOT_ALLOWED", "RATE_LIMITED", "Grant", "RateLimit", "not_allowed", "refusal"]

MODEL_NOT_ALLOWED = "model_not_allowed"
"""The error code of a model the key may not use."""

RATE_LIMITED = "rate_limit_exceeded"
"""The error code of a request over the key's requests or tokens per minute."""


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimit:
    """One of a key's per-minute limits as it stands (the Realtime ``rate_limits``).

    Attributes:
        name: ``requests`` or ``tokens``.
        limit: the most per window.
        remaining: what is left of the current window.
        reset_seconds: seconds until the window starts again.
    """

    name: str
    limit: int
    remaining: int
    reset_seconds: float

    def shown(self) -> dict[str, object]:
        """As the Realtime API's ``rate_limits.updated`` lists it."""
        return dataclasses.asdict(self)


class Grant(Protocol):
    """A session's key, as the session and its dialect see it."""

    @property
    def key(self) -> str:
        """The key's name (for logs and metrics; never its token)."""

    def allows(self, model: str) -> bool:
        """Whether the key may use ``model``."""

    def admit(self, model: str) -> ErrorDetail | None:
        """Let a request for ``model`` start (and count it), or say why not
        (``model_not_allowed``, ``rate_limit_exceeded`` with ``retry_after``)."""

    def limits(self) -> Sequence[RateLimit]:
        """The key's per-minute limits as of the last answer's end (none when it has none)."""

    def used(self, model: str, usage: Usage | None, outcome: str, seconds: float) -> None:
        """An answer for ``model`` ended: count its tokens (none reported: zero)."""


def not_allowed(key: str, model: str) -> ErrorDetail:
    """The refusal of a model the key ``key`` may not use."""
    return ErrorDetail(code=MODEL_NOT_ALLOWED, message=f"key {key!r} may not use model {model!r}")


def refusal(grant: Grant | None, model: str) -> ErrorDetail | None:
    """The refusal of ``model`` under ``grant``, if the key may not use it."""
    if grant is None or grant.allows(model):
        return None
    return not_allowed(grant.key, model)
