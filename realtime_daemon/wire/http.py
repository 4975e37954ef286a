"""An HTTP answer given instead of a WebSocket upgrade."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

__all__ = ["Refusal"]


@dataclasses.dataclass(frozen=True)
class Refusal:
    """An upgrade refused before it happens.

    Attributes:
        status: the HTTP status.
        reason: the sentence the client gets.
        code: a stable name for the log and the metric's ``reason`` label.
        headers: headers of the answer (``Retry-After``, ``WWW-Authenticate``).
    """

    status: int
    reason: str
    code: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
