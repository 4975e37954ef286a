"""A resumable session's replay buffer: its latest envelopes, by sequence number.

While a client is connected the buffer is a ring: it keeps the newest
envelopes up to its byte limit (the client has, or soon will have, the
older ones). While the session is held without a connection nothing is
dropped: past the limit the session's writers wait (see
:meth:`~.outbox.Outbox.settle`).
"""

from __future__ import annotations

import collections

__all__ = ["Ahead", "Gap", "Replay"]


class Gap(Exception):
    """The envelopes after ``after`` are no longer all held."""


class Ahead(Gap):
    """``after`` is beyond the last envelope the session produced: not an id it gave."""


class Replay:
    """Envelopes ``(seq, payload)`` in order, and their total size.

    Args:
        limit: bytes held at most (while the client is connected).
    """

    __slots__ = ("_entries", "bytes", "limit")

    def __init__(self, limit: int) -> None:
        self._entries: collections.deque[tuple[int, bytes]] = collections.deque()
        self.bytes = 0
        self.limit = limit

    @property
    def full(self) -> bool:
        """Whether the buffer holds its limit or more."""
        return self.bytes >= self.limit

    def add(self, seq: int, payload: bytes, *, ring: bool) -> None:
        """Keep envelope ``seq``; with ``ring``, drop the oldest to stay within the limit
        (the newest is always kept)."""
        entries = self._entries
        entries.append((seq, payload))
        self.bytes += len(payload)
        if ring:
            while self.bytes > self.limit and len(entries) > 1:
                self.bytes -= len(entries.popleft()[1])

    def after(self, seq: int, last: int) -> list[bytes]:
        """The payloads after envelope ``seq``, the session's last being ``last``.

        Raises:
            Ahead: ``seq`` is beyond ``last``.
            Gap: some of them are no longer held.
        """
        entries = self._entries
        if seq > last:
            raise Ahead(f"envelope {seq} was never sent: the session's last is {last}")
        first = entries[0][0] if entries else last + 1
        if seq + 1 < first:
            raise Gap(f"envelopes {seq + 1} to {first - 1} are no longer held")
        return [payload for s, payload in entries if s > seq]

    def drop_through(self, seq: int) -> None:
        """Forget the envelopes up to ``seq``: the client has them."""
        entries = self._entries
        while entries and entries[0][0] <= seq:
            self.bytes -= len(entries.popleft()[1])
