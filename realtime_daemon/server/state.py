"""What the app's handlers share, and the key it is stored under."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from aiohttp import web

from realtime_daemon.config import Config
from realtime_daemon.dialects import Shared
from realtime_daemon.dialects.realtime import Hearing, Voice
from realtime_daemon.dialects.registry import DialectSpec
from realtime_daemon.engines.routes import Routes
from realtime_daemon.server.admission import Admission
from realtime_daemon.server.connections import Connections, KeySessions
from realtime_daemon.server.metrics import Metrics
from realtime_daemon.server.quotas import Quotas
from realtime_daemon.session.resume import Resumes

__all__ = ["STATE", "State"]


@dataclasses.dataclass(frozen=True)
class State:
    """What the app's handlers share: settings, routes, open connections, metrics,
    admission, resumable sessions, the dialects served, the keys' quotas and
    sessions, what their connections share (by dialect name) and what sessions
    hear with."""

    config: Config
    routes: Routes
    connections: Connections
    metrics: Metrics
    admission: Admission
    resumes: Resumes
    dialects: Sequence[DialectSpec]
    quotas: Quotas
    key_sessions: KeySessions
    hearing: Hearing | None = None
    shared: Mapping[str, Shared] = dataclasses.field(default_factory=dict)
    voice: Voice | None = None


STATE = web.AppKey("state", State)
