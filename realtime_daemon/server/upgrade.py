"""The checks before a WebSocket upgrade, as one pure function: accept, or refuse.

:func:`check_upgrade` takes the request's path, headers and query and what
the app knows (who may connect, how many are open, the resumable sessions,
the dialects), and returns either what to serve (:class:`Accept`) or why
not (:class:`Refused`, an HTTP status with a one-line reason). No I/O (the
one side effect: a resume takes its session over from the connection it is
on); the handler (:mod:`.websocket`) answers, logs and counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

from realtime_daemon.config import Config
from realtime_daemon.dialects import Shared
from realtime_daemon.dialects.realtime import Hearing, Voice
from realtime_daemon.dialects.registry import DialectSpec, Upgrade, choose
from realtime_daemon.server.admission import ANYONE, Admission, Caller
from realtime_daemon.session.resume import Held, Resumes, identity_of
from realtime_daemon.wire.http import Refusal

__all__ = ["UPGRADE_REQUIRED", "Accept", "Refused", "check_upgrade"]

UPGRADE_REQUIRED = (
    "This is a WebSocket endpoint: connect with a WebSocket client, "
    "for example `websocat ws://HOST:PORT{path}`.\n"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Accept:
    """An upgrade to serve.

    Attributes:
        upgrade: the request, as dialects see it.
        identity: the digest of the client's token (resume binds to it), if any.
        dialect: the dialect of a new session; None for a resume.
        resume: the held session a resume takes over, and the envelope to resume after.
        caller: who the client is (its key, its client secret's session).
    """

    upgrade: Upgrade
    identity: bytes | None
    dialect: DialectSpec | None = None
    resume: tuple[Held, int] | None = None
    caller: Caller = ANYONE


@dataclasses.dataclass(frozen=True, slots=True)
class Refused:
    """An upgrade refused: ``kind`` says which check (for the log and the metric).

    ``handshake`` is not a WebSocket upgrade at all (426); ``admission`` is
    shutdown, capacity, origin or token; ``resume`` a resume that cannot be
    served.
    """

    kind: Literal["handshake", "admission", "resume"]
    refusal: Refusal
    close: bool = False  # close the HTTP connection after the answer


def check_upgrade(
    path: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    config: Config,
    dialects: Sequence[DialectSpec],
    models: Collection[str] | None,
    admission: Admission,
    open_connections: int,
    draining: bool,
    resumes: Resumes,
    shared: Mapping[str, Shared] | None = None,
    hearing: Hearing | None = None,
    voice: Voice | None = None,
) -> Accept | Refused:
    """Whether to upgrade a request on a WebSocket path, and to what."""
    if headers.get("Sec-WebSocket-Version", "13") != "13":
        # RFC 6455 4.4: the versions the server speaks, with a 426; a client
        # speaking another version has no use for the connection.
        refusal = Refusal(
            426, "WebSocket version 13 only", "bad_version", {"Sec-WebSocket-Version": "13"}
        )
        return Refused("handshake", refusal, close=True)
    if headers.get("Upgrade", "").lower() != "websocket":
        text = UPGRADE_REQUIRED.format(path=path).rstrip("\n")
        return Refused(
            "handshake", Refusal(426, text, "upgrade_required", {"Upgrade": "websocket"})
        )
    caller = admission.check(headers, open_connections, draining)
    if isinstance(caller, Refusal):
        return Refused("admission", caller)
    # A resume binds to the key (a client secret's too: it may have expired since).
    key = caller.key
    identity = identity_of(f"key:{key.digest.hex()}") if key is not None else None
    session = caller.session
    upgrade = Upgrade(
        query=query,
        headers=headers,
        config=config,
        models=models,
        hearing=hearing,
        shared=shared or {},
        voice=voice,
        session=session,
    )
    token = query.get("resume")
    if token is not None:
        held = resumes.check(token, query.get("after"), identity)
        if isinstance(held, Refusal):
            return Refused("resume", held)
        return Accept(upgrade, identity, resume=held, caller=caller)
    model = query.get("model") or (session or {}).get("model")
    if key is not None and isinstance(model, str) and not key.allows(model):
        refusal = Refusal(403, f"key {key.name!r} may not use model {model!r}", "model_not_allowed")
        return Refused("admission", refusal)
    spec = choose(dialects, config.protocol, path, upgrade)
    if spec is None:
        return Refused("handshake", Refusal(404, f"no dialect is served at {path}", "not_found"))
    return Accept(upgrade, identity, dialect=spec, caller=caller)
