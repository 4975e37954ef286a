"""A dialect's writer for tests: frames numbered and kept in a list, no loop, no socket."""

from __future__ import annotations

import json
from typing import Any


class Frames:
    """Numbers frames 1, 2, 3, ... as the session's outbox does, and keeps them."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def write(self, head: bytes, tail: bytes) -> None:
        self.payloads.append(b"%b%d%b" % (head, len(self.payloads) + 1, tail))

    @property
    def events(self) -> list[dict[str, Any]]:
        """The frames written so far, decoded."""
        return [json.loads(payload) for payload in self.payloads]
