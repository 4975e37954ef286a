"""Where responses are kept to be continued: the connection's chains, and the store.

A chain is a response's whole conversation (its history, input and output,
as input items), found by the response's id. :class:`Chains` keeps those of
one connection, bounded in items and bytes (the oldest go first). A
:class:`ResponseStore` keeps ``store: true`` responses beyond the
connection: :class:`MemoryStore` in the daemon (bounded, each kept for a
TTL), :class:`RedisStore` in Redis, shared by every instance that uses it.
The store is the dialect's only I/O: its reads run as the session's
:class:`~realtime_daemon.wire.events.Work`; its writes go behind (the
store owns their tasks), so a response's end never waits for Redis.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from typing import Any, Protocol

import msgspec
import structlog

__all__ = [
    "Chain",
    "Chains",
    "MemoryStore",
    "RedisStore",
    "ResponseStore",
    "StoreUnavailable",
]

logger = structlog.get_logger("realtime_daemon")

_decoder = msgspec.json.Decoder(list[dict[str, Any]])
_encoder = msgspec.json.Encoder()


@dataclasses.dataclass(frozen=True, slots=True)
class Chain:
    """A response's conversation: its items, and their JSON size."""

    items: tuple[dict[str, Any], ...]
    size: int


class Chains:
    """One connection's responses, by id, bounded: past ``max_items`` items or
    ``max_bytes`` bytes of what the responses added, the oldest are forgotten.

    The items of a chain are shared with the chains that continue it (a
    tuple of the same dicts), so a long loop costs its items once.
    """

    __slots__ = ("_added", "_bytes", "_chains", "_items", "max_bytes", "max_items")

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._chains: collections.OrderedDict[str, Chain] = collections.OrderedDict()
        self._added: dict[str, tuple[int, int]] = {}  # items and bytes each one added
        self._items = 0
        self._bytes = 0
        self.max_items = max_items
        self.max_bytes = max_bytes

    def get(self, response_id: str) -> Chain | None:
        return self._chains.get(response_id)

    def add(self, response_id: str, chain: Chain, added: tuple[int, int]) -> None:
        """Keep ``chain``, which added ``added`` (items, bytes) to the one it continues."""
        self._chains[response_id] = chain
        self._added[response_id] = added
        self._items += added[0]
        self._bytes += added[1]
        while len(self._chains) > 1 and (
            self._items > self.max_items or self._bytes > self.max_bytes
        ):
            oldest, _ = self._chains.popitem(last=False)
            items, size = self._added.pop(oldest)
            self._items -= items
            self._bytes -= size


class StoreUnavailable(Exception):
    """The response store cannot be reached."""


class ResponseStore(Protocol):
    """Where ``store: true`` responses outlive their connection."""

    @property
    def up(self) -> bool:
        """Whether its last use worked (for the metric)."""

    def put(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """Keep a response's chain (written behind: a failure is logged and counted)."""

    async def get(self, response_id: str) -> list[dict[str, Any]] | None:
        """A kept response's chain; None if it is unknown (or expired).

        Raises:
            StoreUnavailable: the store cannot be reached, within its timeout.
        """

    async def aclose(self) -> None:
        """Finish or drop the writes in flight, and let go of connections."""


class MemoryStore:
    """The daemon's own store: at most ``max_entries`` responses and ``max_bytes`` bytes
    of them (the oldest go first), each for ``ttl`` seconds.

    Args:
        max_entries: responses kept at most.
        max_bytes: JSON bytes of their chains kept at most.
        ttl: seconds a response is kept.
    """

    up = True

    def __init__(
        self, max_entries: int = 10_000, max_bytes: int = 256 << 20, ttl: float = 3600.0
    ) -> None:
        self._kept: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._ttl = ttl

    def put(self, response_id: str, items: list[dict[str, Any]]) -> None:
        value = _encoder.encode(items)
        self._forget(response_id)
        self._kept[response_id] = (time.monotonic() + self._ttl, value)
        self._bytes += len(value)
        while len(self._kept) > self._max or self._bytes > self._max_bytes:
            _, (_, dropped) = self._kept.popitem(last=False)
            self._bytes -= len(dropped)

    def _forget(self, response_id: str) -> None:
        kept = self._kept.pop(response_id, None)
        if kept is not None:
            self._bytes -= len(kept[1])

    async def get(self, response_id: str) -> list[dict[str, Any]] | None:
        kept = self._kept.get(response_id)
        if kept is None:
            return None
        if kept[0] < time.monotonic():
            self._forget(response_id)
            return None
        return _decoder.decode(kept[1])

    async def aclose(self) -> None:
        self._kept.clear()
        self._bytes = 0


class RedisStore:
    """Responses kept in Redis (``SET key value EX ttl``), shared by the instances using it.

    Args:
        url: ``redis://HOST:PORT/DB``.
        ttl: seconds a response is kept.
        timeout: seconds a read or write may take before the store counts as down.
        max_writes: writes in flight at most; past it, a response is kept only on
            its connection.
    """

    def __init__(
        self, url: str, ttl: float = 3600.0, timeout: float = 2.0, max_writes: int = 1000
    ) -> None:
        import redis.asyncio
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a down store answers at once, not after retries
        )
        self._ttl = max(int(ttl), 1)
        self._timeout = timeout
        self._max_writes = max_writes
        self._writes: set[asyncio.Task[None]] = set()
        self.up = True

    @staticmethod
    def _key(response_id: str) -> str:
        return f"realtime-daemon:response:{response_id}"

    def _health(self, up: bool, error: BaseException | None = None) -> None:
        if up != self.up:
            if up:
                logger.info("response_store_up")
            else:
                logger.warning("response_store_down", error=str(error) or type(error).__name__)
        self.up = up

    def put(self, response_id: str, items: list[dict[str, Any]]) -> None:
        if len(self._writes) >= self._max_writes:
            logger.warning("response_store_busy", writes=len(self._writes))
            return
        task = asyncio.get_running_loop().create_task(
            self._put(self._key(response_id), _encoder.encode(items))
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put(self, key: str, value: bytes) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.set(key, value, ex=self._ttl)
        except Exception as exc:  # the response is still kept on its connection
            self._health(False, exc)
        else:
            self._health(True)

    async def get(self, response_id: str) -> list[dict[str, Any]] | None:
        try:
            async with asyncio.timeout(self._timeout):
                value = await self._redis.get(self._key(response_id))
        except Exception as exc:
            self._health(False, exc)
            raise StoreUnavailable(str(exc) or type(exc).__name__) from None
        self._health(True)
        return None if value is None else _decoder.decode(value)

    async def aclose(self) -> None:
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=self._timeout)
        for task in set(self._writes):
            task.cancel()
        await self._redis.aclose()
