"""The keys' counters in Redis, shared by the instances of a fleet (``--redis-url``).

Sessions at once are leases: a sorted set per key (``rd:sessions:<key>``)
whose members are this instance's sessions, scored with the Redis clock's
time the lease runs out. Taking one is one script (expired leases dropped,
then a slot taken if one is free: atomic); this instance renews its leases
every :data:`RENEW` seconds, so those of an instance that died run out within
:data:`LEASE` seconds. The per-minute counts are ``INCRBY`` on
``rd:<kind>:<key>:<window>`` (expiring after two windows): what this instance
counted is sent in the background, in one pipeline for every key and window
at once, which brings back the fleet's totals (:meth:`RedisCounters.total`
is those, with what was counted since). No request waits for Redis.

When Redis does not answer, :attr:`RedisCounters.up` turns False: the
``realtime_daemon_shared_store_up`` gauge says 0, a warning is logged once,
each instance counts alone (:class:`~.quotas.Quotas` falls back), and the
flusher tries again every :data:`RETRY` seconds; when Redis answers again,
the leases of this instance's sessions are written back.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from realtime_daemon.server.metrics import Metrics

__all__ = ["LEASE", "RENEW", "RETRY", "RedisCounters"]

logger = structlog.get_logger("realtime_daemon")

LEASE = 30
"""Seconds a session's slot outlives its instance's last renewal."""
RENEW = 10.0
"""Seconds between renewals of this instance's leases."""
RETRY = 1.0
"""Seconds between tries while Redis does not answer, and between refreshes of the
totals of the keys this instance serves."""
_TIMEOUT = 0.5  # seconds a Redis call may take before it counts as down
_WINDOWS_KEPT = 120  # seconds a per-minute count is kept: this window and the last

_ACQUIRE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
  return 1
end
return 0
"""

_RENEW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], t, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
return #ARGV - 1
"""

Window = tuple[str, str, int]  # (key, kind, window)


class RedisCounters:
    """The :class:`~.quotas.Shared` store of ``--redis-url``.

    Args:
        url: the Redis URL.
        metrics: the app's metrics (the ``shared_store_up`` gauge).
        instance: this instance's id, leading its lease members.
        lease: seconds a slot outlives its instance's last renewal.
    """

    def __init__(self, url: str, metrics: Metrics, instance: str, lease: int = LEASE) -> None:
        self.lease = lease
        self._redis: Any = redis.Redis.from_url(
            url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._metrics = metrics
        self._instance = instance
        self.up = True
        self._leases: dict[str, set[str]] = {}  # key -> this instance's members
        self._released: list[tuple[str, str]] = []
        self._pending: dict[Window, int] = {}  # counted here, not yet sent
        self._sending: dict[Window, int] = {}  # sent, not yet answered
        self._seen: dict[Window, int] = {}  # the fleet's totals, as last answered
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        metrics.shared_store_up.set(1)

    def start(self) -> None:
        """Start the flusher (on the app's loop)."""
        self._task = asyncio.get_running_loop().create_task(self._flusher())

    async def close(self) -> None:
        """Stop the flusher and give the leases back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, members in self._leases.items():
                    pipe.zrem(f"rd:sessions:{key}", *members)
                await pipe.execute()
        await self._redis.aclose()

    def _member(self, member: str) -> str:
        return f"{self._instance}:{member}"

    def _down(self, exc: BaseException) -> None:
        if self.up:
            logger.warning("shared_store_down", error=str(exc) or type(exc).__name__)
            self._metrics.shared_store_up.set(0)
        self.up = False
        self._seen.clear()
        self._sending.clear()
        self._pending.clear()  # counted alone meanwhile: the fleet's counts start over

    def _back(self) -> None:
        if not self.up:
            logger.info("shared_store_up")
            self._metrics.shared_store_up.set(1)
        self.up = True

    async def acquire(self, key: str, member: str, limit: int) -> bool | None:
        if not self.up:
            return None  # the flusher finds out when it is back
        self._metrics.shared_store_round_trips.inc()
        try:
            taken = await self._acquire(
                keys=[f"rd:sessions:{key}"], args=[self._member(member), limit, self.lease]
            )
        except (RedisError, OSError) as exc:
            self._down(exc)
            return None
        if taken:
            self._leases.setdefault(key, set()).add(self._member(member))
        return bool(taken)

    def release(self, key: str, member: str) -> None:
        name = self._member(member)
        members = self._leases.get(key)
        if members is not None and name in members:
            members.discard(name)
            self._released.append((key, name))
            self._wake.set()

    def add(self, key: str, kind: str, window: int, amount: int) -> None:
        at = (key, kind, window)
        self._pending[at] = self._pending.get(at, 0) + amount
        self._seen.setdefault(at, 0)
        self._wake.set()

    def total(self, key: str, kind: str, window: int) -> int | None:
        if not self.up:
            return None
        at = (key, kind, window)
        if at not in self._seen:
            self._seen[at] = 0  # watched from now on: the next exchange brings it
            self._wake.set()
        return self._seen[at] + self._sending.get(at, 0) + self._pending.get(at, 0)

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            # A timer, not asyncio.timeout: a cancel that comes as a timeout ends
            # must stop the flusher, not be taken for the timeout and swallowed.
            tick = loop.call_later(RETRY, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                tick.cancel()
            self._wake.clear()
            renew = not self.up or loop.time() - renewed >= min(RENEW, self.lease / 3)
            try:
                await self._exchange(renew)
            except (RedisError, OSError) as exc:
                self._down(exc)
                continue
            self._back()
            if renew:
                renewed = loop.time()

    async def _exchange(self, renew: bool) -> None:
        """One pipeline: the counts since the last, the slots given back, the leases
        renewed (when due), and the fleet's totals of every window watched."""
        self._sending, self._pending = self._pending, {}
        released, self._released = self._released, []
        watched = list(self._seen)
        async with self._redis.pipeline(transaction=False) as pipe:
            for (key, kind, window), amount in self._sending.items():
                name = f"rd:{kind}:{key}:{window}"
                pipe.incrby(name, amount)
                pipe.expire(name, _WINDOWS_KEPT)
            for key, member in released:
                pipe.zrem(f"rd:sessions:{key}", member)
            for key, kind, window in watched:
                pipe.get(f"rd:{kind}:{key}:{window}")
            if renew:
                for key, members in self._leases.items():
                    if members:
                        await self._renew(
                            keys=[f"rd:sessions:{key}"], args=[self.lease, *members], client=pipe
                        )
            self._metrics.shared_store_round_trips.inc()
            replies = await pipe.execute()
        at = 2 * len(self._sending) + len(released)
        self._sending = {}
        newest = max((w for _, _, w in watched), default=0)
        for at_window, reply in zip(watched, replies[at : at + len(watched)], strict=True):
            if at_window[2] >= newest - 1:  # older windows are of no use any more
                self._seen[at_window] = int(reply or 0)
            else:
                self._seen.pop(at_window, None)
