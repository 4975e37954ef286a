"""The dialect registry: each wire the daemon speaks, and what selects it.

One table, :data:`DIALECTS`. The server serves each entry's path, offers its
subprotocols, labels its metrics with its name and lets ``--protocol`` force
it; resume reads ``after`` with its id pattern. A new dialect is a new module
plus an entry here (or in the table a caller passes to ``build_app``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, cast

from realtime_daemon.config import Config
from realtime_daemon.dialects import Dialect, FrameWriter, Resumable, Shared
from realtime_daemon.dialects.chat import ChatDialect
from realtime_daemon.dialects.realtime import BETA, GA, Hearing, RealtimeDialect, Voice
from realtime_daemon.dialects.responses import (
    NAME as RESPONSES,
)
from realtime_daemon.dialects.responses import (
    MemoryStore,
    RedisStore,
    ResponsesDialect,
    ResponseStore,
)
from realtime_daemon.wire.grants import Grant

__all__ = [
    "AUTO",
    "DIALECTS",
    "DialectFactory",
    "DialectSpec",
    "Upgrade",
    "choose",
    "parse_after",
]

AUTO = "auto"
"""``--protocol``'s default: each upgrade picks its dialect (see :func:`choose`)."""

DialectFactory = Callable[[FrameWriter, str, "Resumable | None"], Dialect]
"""Makes a connection's dialect from its writer, its session id, and the session's
resume switch (None when resume is off)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Upgrade:
    """What a dialect is chosen and built from: the upgrade request and the settings.

    Attributes:
        query: the URL's query parameters.
        headers: the request's headers.
        config: the daemon's settings.
        models: the models a session may choose; None when any is taken.
        grant: the client's key (its models, quotas, usage); None without keys.
        session: the session configuration a client secret starts the session with.
        hearing: what a Realtime session needs to hear audio (``--stt``), if any.
        shared: what each dialect's connections share, by dialect name
            (:attr:`DialectSpec.shared`).
        voice: what it needs to speak (``--tts``), if any.
    """

    query: Mapping[str, str]
    headers: Mapping[str, str]
    config: Config
    models: Collection[str] | None
    hearing: Hearing | None = None
    shared: Mapping[str, Shared] = dataclasses.field(default_factory=dict)
    voice: Voice | None = None
    grant: Grant | None = None
    session: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DialectSpec:
    """One dialect of the registry.

    Attributes:
        name: its name: ``--protocol``'s choice and the metrics' ``dialect`` label.
        build: makes the connection's dialect factory from its upgrade.
        selects: whether an upgrade on its path asks for it when ``--protocol``
            is ``auto``; None: the path's default (taken when no other selects).
        subprotocols: the WebSocket subprotocols it answers with, when offered.
        after: the pattern of ``?after=`` on resume; group 1 is the envelope number.
        path: the URL path it is served at, from the settings (``--path`` by default).
        shared: makes what its connections share in one daemon (made once, when
            the app is built; closed when it stops), if anything.
    """

    name: str
    build: Callable[[Upgrade], DialectFactory]
    selects: Callable[[Upgrade], bool] | None = None
    subprotocols: tuple[str, ...] = ()
    after: re.Pattern[str] = re.compile(r"(\d{1,18})")
    path: Callable[[Config], str] = lambda config: config.path
    shared: Callable[[Config], Shared] | None = None


def _beta(upgrade: Upgrade) -> bool:
    offered = upgrade.headers.get("OpenAI-Beta", "").replace(" ", "").split(",")
    return "realtime=v1" in offered


def _realtime_selected(upgrade: Upgrade) -> bool:
    # The OpenAI SDKs send ?model=...; the beta ones an OpenAI-Beta header;
    # transcription sessions ?intent=transcription; a client secret is the
    # Realtime API's.
    query = upgrade.query
    return (
        _beta(upgrade)
        or "model" in query
        or query.get("intent") == "transcription"
        or upgrade.session is not None
    )


def _chat(upgrade: Upgrade) -> DialectFactory:
    models, limit = upgrade.models, upgrade.config.max_concurrent_requests

    def chat(writer: FrameWriter, session_id: str, resume: Resumable | None) -> ChatDialect:
        return ChatDialect(writer, session_id, models, limit, resume, upgrade.grant)

    return chat


def _realtime(upgrade: Upgrade) -> DialectFactory:
    config = upgrade.config
    names = BETA if _beta(upgrade) else GA
    model = upgrade.query.get("model") or None
    if upgrade.session is not None and isinstance(upgrade.session.get("model"), str):
        model = upgrade.session["model"]  # the client secret's
    hearing = upgrade.hearing
    transcription = upgrade.query.get("intent") == "transcription"

    def realtime(writer: FrameWriter, session_id: str, resume: Resumable | None) -> Dialect:
        return RealtimeDialect(
            writer,
            session_id,
            names=names,
            model=model,
            models=upgrade.models,
            concurrency_limit=config.max_concurrent_requests,
            max_items=config.max_conversation_items,
            max_bytes=config.max_conversation_bytes,
            resume=resume,
            grant=upgrade.grant,
            session=upgrade.session,
            hearing=hearing,
            voice=upgrade.voice,
            transcription=transcription,
        )

    return realtime


def _store(config: Config) -> ResponseStore:
    # Kept as long as a connection may last: a chain outlives its connection by that.
    ttl = config.max_session_duration
    if config.redis_url is not None:
        return RedisStore(config.redis_url, ttl=ttl)
    return MemoryStore(ttl=ttl)


def _responses(upgrade: Upgrade) -> DialectFactory:
    config = upgrade.config
    store = cast("ResponseStore | None", upgrade.shared.get(RESPONSES))

    def responses(writer: FrameWriter, session_id: str, resume: Resumable | None) -> Dialect:
        return ResponsesDialect(
            writer,
            session_id,
            models=upgrade.models,
            concurrency_limit=config.max_concurrent_requests,
            max_items=config.max_conversation_items,
            max_bytes=config.max_conversation_bytes,
            store=store,
        )

    return responses


DIALECTS: tuple[DialectSpec, ...] = (
    DialectSpec(
        name="openai-realtime",
        build=_realtime,
        selects=_realtime_selected,
        subprotocols=("realtime",),  # what OpenAI's browser clients offer
        after=re.compile(r"(?:event_)?(\d{1,18})"),  # Realtime event ids: event_12
    ),
    DialectSpec(name="chat", build=_chat),
    DialectSpec(
        name=RESPONSES,
        build=_responses,
        path=lambda config: config.responses_path,
        shared=_store,
    ),
)
"""The dialects the daemon speaks; on one path, those with ``selects`` are tried in
order before the path's default."""


def choose(
    dialects: Sequence[DialectSpec], setting: str, path: str, upgrade: Upgrade
) -> DialectSpec | None:
    """The dialect of an upgrade on ``path``.

    With ``--protocol`` ``auto``, the first of the path's dialects that the
    upgrade selects, else the path's default; with a dialect's name, that
    one on the main path (``--path``). None when none is served there.
    """
    served = [spec for spec in dialects if spec.path(upgrade.config) == path]
    if setting != AUTO and path == upgrade.config.path:
        return next((spec for spec in served if spec.name == setting), None)
    for spec in served:
        if spec.selects is not None and spec.selects(upgrade):
            return spec
    return next((spec for spec in served if spec.selects is None), None)


def parse_after(dialects: Sequence[DialectSpec], text: str | None) -> int | None:
    """``?after=`` as an envelope number, in any dialect's id form (``12``,
    ``event_12``); absent means 0, every envelope. None if it is none of them."""
    if text is None:
        return 0
    for spec in dialects:
        match = spec.after.fullmatch(text)
        if match:
            return int(match.group(1))
    return None
