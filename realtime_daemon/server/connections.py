"""The open connections of one app, and the drain that ends them on shutdown."""

from __future__ import annotations

import asyncio
from typing import Protocol

from realtime_daemon.server.metrics import Metrics

__all__ = ["Connections", "Drainable", "KeySessions", "Revocable"]


class Drainable(Protocol):
    """What the registry needs of a connection."""

    def drain(self, deadline: float) -> None:
        """Take no new requests; finish answers in progress until ``deadline``."""


class Connections:
    """The open connections of one app, and its drain."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._open: set[Drainable] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._drain_deadline: float | None = None

    def __len__(self) -> int:
        return len(self._open)

    @property
    def draining(self) -> bool:
        """Whether :meth:`drain` has begun."""
        return self._drain_deadline is not None

    def add(self, connection: Drainable) -> None:
        self._open.add(connection)
        self._empty.clear()
        self._metrics.connections.inc()
        self._metrics.connections_open.inc()
        if self._drain_deadline is not None:
            # Upgraded while the drain began: it drains with the others.
            connection.drain(self._drain_deadline)

    def discard(self, connection: Drainable) -> None:
        if connection in self._open:
            self._open.remove(connection)
            self._metrics.connections_open.dec()
        if not self._open:
            self._empty.set()

    def begin_drain(self, grace: float) -> None:
        """Refuse new connections, and new requests on the open ones.

        Answers in progress, and requests already queued, get ``grace``
        seconds to finish; then each connection closes 1001.
        """
        deadline = asyncio.get_running_loop().time() + grace
        self._drain_deadline = deadline
        self._metrics.draining.set(1)
        for connection in list(self._open):
            connection.drain(deadline)

    async def drain(self, grace: float) -> None:
        """:meth:`begin_drain`, then wait until every connection is closed."""
        self.begin_drain(grace)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until no connection is open."""
        await self._empty.wait()


class Revocable(Protocol):
    """What :class:`KeySessions` needs of a session."""

    def revoke(self, reason: str) -> None:
        """End the session now: its key is gone (1008, ``reason``)."""


class KeySessions:
    """The open sessions of each named key, to close when a reload takes the key away."""

    def __init__(self) -> None:
        self._by_key: dict[str, set[Revocable]] = {}

    def add(self, key: str, session: Revocable) -> None:
        self._by_key.setdefault(key, set()).add(session)

    def discard(self, key: str, session: Revocable) -> None:
        sessions = self._by_key.get(key)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_key[key]

    def count(self, key: str) -> int:
        """The sessions of ``key`` open now."""
        return len(self._by_key.get(key, ()))

    def revoke(self, keys: frozenset[str]) -> int:
        """Close the sessions of ``keys`` (removed or disabled); how many were closed."""
        closed = 0
        for key in keys:
            for session in list(self._by_key.get(key, ())):
                session.revoke(f"key {key!r} was removed or disabled")
                closed += 1
        return closed
