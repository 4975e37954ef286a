"""Each key's quotas and usage: sessions at once, requests and tokens per minute.

The per-minute limits are fixed windows: a window is a minute of the clock
(``now // 60``); a request is let in while the key's requests of the window
are fewer than ``requests_per_minute`` and its tokens fewer than
``tokens_per_minute``; a refusal says how many seconds are left of the
window (``retry_after``). Tokens are the engine's usage, counted when an
answer ends (an engine that reports none counts zero), so the request that
crosses the token limit is served and the next ones wait.

In memory by default, each instance counting for itself. With a
:class:`Shared` store (:mod:`.redis_counters`), the counts are the fleet's:
sessions are leased in the store at the upgrade, and the per-minute counts
are added to it in the background, in batches, each batch bringing back the
fleet's totals; a request is decided on the totals as of the last exchange
(no round trip before a request), so a burst spread over instances may pass
a limit by what was let in during one round trip. While the store is
unreachable, each instance counts alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

from realtime_daemon.dialects.realtime.hearing import VoiceObserver
from realtime_daemon.server.keys import Key
from realtime_daemon.server.metrics import Metrics
from realtime_daemon.wire.chat import ErrorDetail, Usage
from realtime_daemon.wire.grants import RATE_LIMITED, RateLimit, not_allowed

__all__ = ["WINDOW", "KeyEars", "KeyGrant", "Quotas", "Shared"]

logger = structlog.get_logger("realtime_daemon")

WINDOW = 60
"""Seconds of a per-minute window."""


class Shared(Protocol):
    """A store the fleet's instances share their counts in (Redis)."""

    @property
    def up(self) -> bool:
        """Whether the store answered the last time it was asked."""

    async def acquire(self, key: str, member: str, limit: int) -> bool | None:
        """Take one of ``limit`` session slots of ``key`` as ``member``; None: the
        store is unreachable (count locally)."""

    def release(self, key: str, member: str) -> None:
        """Give ``member``'s slot back (in the background)."""

    def add(self, key: str, kind: str, window: int, amount: int) -> None:
        """Add ``amount`` to a window's count (batched, in the background)."""

    def total(self, key: str, kind: str, window: int) -> int | None:
        """The fleet's count of a window, as of the last exchange, with what this
        instance added since; None while the store is unreachable."""


class Quotas:
    """Every key's counts on this instance, and the store they share, if any.

    Args:
        metrics: the app's metrics (the usage counters).
        shared: the fleet's store; None to count on this instance only.
        clock: Unix time (a test's own).
    """

    def __init__(
        self,
        metrics: Metrics,
        shared: Shared | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.shared = shared
        self.clock = clock
        self._sessions: dict[str, int] = {}
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}  # -> (window, count)

    # -- sessions at once ---------------------------------------------------------------

    async def open_session(self, key: Key, member: str) -> bool:
        """Take a session slot of ``key`` for the session ``member``; False: none is free."""
        limit = key.max_sessions
        if limit is None:
            self._sessions[key.name] = self._sessions.get(key.name, 0) + 1
            return True
        taken: bool | None = None
        if self.shared is not None:
            taken = await self.shared.acquire(key.name, member, limit)
        if taken is None:
            taken = self._sessions.get(key.name, 0) < limit
        if taken:
            self._sessions[key.name] = self._sessions.get(key.name, 0) + 1
        return taken

    def close_session(self, key: Key, member: str) -> None:
        """The session ``member`` of ``key`` ended: its slot is free."""
        self._sessions[key.name] = max(self._sessions.get(key.name, 1) - 1, 0)
        if self.shared is not None and key.max_sessions is not None:
            self.shared.release(key.name, member)

    def sessions(self, name: str) -> int:
        """Sessions of the key named ``name`` open on this instance."""
        return self._sessions.get(name, 0)

    # -- per-minute counts --------------------------------------------------------------

    def window(self) -> tuple[int, float]:
        """The current window's number, and the seconds left of it."""
        now = self.clock()
        index = int(now // WINDOW)
        return index, (index + 1) * WINDOW - now

    def count(self, name: str, kind: str, window: int) -> int:
        """The key's count of ``kind`` (``requests``, ``tokens``) in ``window``."""
        if self.shared is not None:
            total = self.shared.total(name, kind, window)
            if total is not None:
                return total
        at, count = self._counts.get((name, kind), (window, 0))
        return count if at == window else 0

    def add(self, name: str, kind: str, window: int, amount: int) -> None:
        """Count ``amount`` more of ``kind`` for the key in ``window``."""
        at, count = self._counts.get((name, kind), (window, 0))
        self._counts[name, kind] = (window, (count if at == window else 0) + amount)
        if self.shared is not None:
            self.shared.add(name, kind, window, amount)

    def grant(self, key: Key, session: str) -> KeyGrant:
        """What the session ``session`` may do under ``key`` (with a shared store, the
        key's windows are watched from now on: the next exchange brings their totals)."""
        if self.shared is not None:
            window = self.window()[0]
            for kind in ("requests", "tokens"):
                self.shared.total(key.name, kind, window)
        return KeyGrant(self, key, session)


class KeyGrant:
    """One session's :class:`~realtime_daemon.wire.grants.Grant`: its key's models,
    quotas and usage.

    Args:
        quotas: the instance's counts.
        key: the session's key.
        session: the session's id, for the usage log.
    """

    __slots__ = ("_counters", "_key", "_limits", "_quotas", "_session")

    def __init__(self, quotas: Quotas, key: Key, session: str) -> None:
        self._quotas = quotas
        self._key = key
        self._session = session
        self._limits: Sequence[RateLimit] | None = None  # as of the last answer's end
        # The usage series of this key, by model: found once, not per answer.
        self._counters: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    @property
    def key(self) -> str:
        return self._key.name

    def allows(self, model: str) -> bool:
        return self._key.allows(model)

    def admit(self, model: str) -> ErrorDetail | None:
        key, quotas = self._key, self._quotas
        if not key.allows(model):
            quotas.metrics.key_refused.labels(key.name, "model_not_allowed").inc()
            return not_allowed(key.name, model)
        window, left = quotas.window()
        for kind, limit in (
            ("requests", key.requests_per_minute),
            ("tokens", key.tokens_per_minute),
        ):
            if limit is not None and quotas.count(key.name, kind, window) >= limit:
                quotas.metrics.key_refused.labels(key.name, RATE_LIMITED).inc()
                wait = math.ceil(left)
                return ErrorDetail(
                    code=RATE_LIMITED,
                    message=f"key {key.name!r} is over its {limit} {kind} per minute: "
                    f"retry after {wait} s",
                    retry_after=wait,
                )
        if self._limits is None:  # the first response's figures: before it
            self._limits = self._figures()
        if key.requests_per_minute is not None or quotas.shared is not None:
            quotas.add(key.name, "requests", window, 1)
        return None

    def limits(self) -> Sequence[RateLimit]:
        if self._limits is None:
            self._limits = self._figures()
        return self._limits

    def _figures(self) -> Sequence[RateLimit]:
        key, quotas = self._key, self._quotas
        window, left = quotas.window()
        figures = []
        for kind, limit in (
            ("requests", key.requests_per_minute),
            ("tokens", key.tokens_per_minute),
        ):
            if limit is not None:
                used = quotas.count(key.name, kind, window)
                figures.append(RateLimit(kind, limit, max(limit - used, 0), round(left, 3)))
        return figures

    def used(self, model: str, usage: Usage | None, outcome: str, seconds: float) -> None:
        key, quotas = self._key, self._quotas
        tokens_in = usage.prompt_tokens if usage is not None else 0
        tokens_out = usage.completion_tokens if usage is not None else 0
        series = self._counters.get((model, outcome))
        if series is None:
            metrics = quotas.metrics
            series = self._counters[model, outcome] = (
                metrics.key_requests.labels(key.name, model, outcome),
                metrics.key_tokens.labels(key.name, model, "in"),
                metrics.key_tokens.labels(key.name, model, "out"),
            )
        series[0].inc()
        if tokens_in:
            series[1].inc(tokens_in)
        if tokens_out:
            series[2].inc(tokens_out)
        total = usage.total_tokens or tokens_in + tokens_out if usage is not None else 0
        if total and (key.tokens_per_minute is not None or quotas.shared is not None):
            quotas.add(key.name, "tokens", quotas.window()[0], total)
        if key.requests_per_minute is not None or key.tokens_per_minute is not None:
            self._limits = self._figures()
        logger.info(
            "usage",
            key=key.name,
            model=model,
            conn=self._session,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            duration_s=round(seconds, 3),
            outcome=outcome,
        )


class KeyEars:
    """A keyed session's voice observer: the daemon's, and the key's audio seconds
    (labelled with the model the session was opened for).

    Args:
        inner: the daemon's observer (its metrics).
        metrics: the app's metrics.
        key: the session's key's name.
        model: the model named at the upgrade (``?model=``, a client secret's), if any.
    """

    __slots__ = ("_heard", "_inner", "_spoken")

    def __init__(self, inner: VoiceObserver, metrics: Metrics, key: str, model: str) -> None:
        self._inner = inner
        self._heard = metrics.key_audio_seconds.labels(key, model, "in")
        self._spoken = metrics.key_audio_seconds.labels(key, model, "out")

    def heard(self, engine: str, seconds: float) -> None:
        self._inner.heard(engine, seconds)
        self._heard.inc(seconds)

    def turn_detected(self, engine: str) -> None:
        self._inner.turn_detected(engine)

    def transcribed(self, engine: str, seconds: float, code: str | None) -> None:
        self._inner.transcribed(engine, seconds, code)

    def spoke(self, engine: str, seconds: float) -> None:
        self._inner.spoke(engine, seconds)
        self._spoken.inc(seconds)
