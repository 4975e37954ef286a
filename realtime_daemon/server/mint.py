"""The client secrets endpoints: a key's holder mints a short-lived secret for a browser.

``POST /v1/realtime/client_secrets`` (GA) takes what the official SDKs'
``client.realtime.client_secrets.create(expires_after=..., session=...)``
send, and answers ``{value, expires_at, session}``; ``POST
/v1/realtime/sessions`` (beta) takes the session configuration itself, with
an optional ``client_secret.expires_after``, and answers the session with
``client_secret {value, expires_at}``. The session configuration is checked
as the session will apply it (a Realtime session is built from it, unserved),
so a secret that would start a broken session is refused now (400).
Authenticated with a key, never with a client secret (401): a secret opens
connections, it mints nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from realtime_daemon.dialects.realtime import BETA, GA, RealtimeDialect
from realtime_daemon.server.state import STATE, State

__all__ = ["CLIENT_SECRETS", "DEFAULT_TTL", "MIN_TTL", "SESSIONS", "client_secrets", "unauthorized"]

CLIENT_SECRETS = "/v1/realtime/client_secrets"
SESSIONS = "/v1/realtime/sessions"
DEFAULT_TTL = 600
"""Seconds a secret lives when ``expires_after`` does not say (as OpenAI's)."""
MIN_TTL = 10

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _error(status: int, message: str, code: str, param: str | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "code": code, "param": param}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": error}, status=status, headers=headers)


def unauthorized() -> web.Response:
    """OpenAI's answer to a request without a valid key."""
    return _error(401, "a valid bearer token is required", "invalid_api_key")


class _Invalid(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _ttl(expires_after: object, limit: int, param: str) -> int:
    if expires_after is None:
        return DEFAULT_TTL
    if not isinstance(expires_after, dict):
        raise _Invalid(f"{param} must be an object", param)
    anchor = expires_after.get("anchor", "created_at")
    if anchor != "created_at":
        raise _Invalid(f"{param}.anchor must be created_at", f"{param}.anchor")
    seconds = expires_after.get("seconds", DEFAULT_TTL)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not MIN_TTL <= seconds <= limit:
        raise _Invalid(
            f"{param}.seconds must be an integer from {MIN_TTL} to {limit}", f"{param}.seconds"
        )
    return seconds


def _effective(state: State, session: dict[str, Any], beta: bool) -> dict[str, Any]:
    """The session as a connection with this configuration starts it.

    Raises:
        _Invalid: the configuration is refused (as ``session.update`` would refuse it).
    """
    frames: list[bytes] = []

    class _Writer:
        def write(self, head: bytes, tail: bytes) -> None:
            frames.append(head + b"0" + tail)

    config = state.config
    dialect = RealtimeDialect(
        _Writer(),
        uuid.uuid4().hex,
        names=BETA if beta else GA,
        model=None,
        models=state.routes.models,
        concurrency_limit=config.max_concurrent_requests,
        max_items=config.max_conversation_items,
        max_bytes=config.max_conversation_bytes,
        session=session,
    )
    dialect.opened()
    events = [json.loads(frame) for frame in frames]
    for event in events:
        if event["type"] == "error":
            raise _Invalid(event["error"]["message"], event["error"].get("param"))
    created: dict[str, Any] = events[0]["session"]
    return created


def client_secrets(beta: bool) -> Handler:
    """The handler minting client secrets (``beta``: the ``/v1/realtime/sessions`` shape)."""

    async def mint(request: web.Request) -> web.Response:
        state = request.app[STATE]
        signer = state.admission.signer
        if signer is None:
            return _error(501, "client secrets need --secret-key-file", "not_implemented")
        caller = state.admission.identify(request.headers, secrets=False)
        if caller is None:
            return unauthorized()
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError as exc:
            return _error(400, f"malformed JSON body: {exc}", "invalid_json")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object", "invalid_request")
        limit = state.config.max_client_secret_ttl
        try:
            if beta:
                secret = body.pop("client_secret", None) or {}
                if not isinstance(secret, dict):
                    raise _Invalid("client_secret must be an object", "client_secret")
                ttl = _ttl(secret.get("expires_after"), limit, "client_secret.expires_after")
                session = body
            else:
                ttl = _ttl(body.get("expires_after"), limit, "expires_after")
                session = body.get("session") or {}
                if not isinstance(session, dict):
                    raise _Invalid("session must be an object", "session")
            shown = _effective(state, session, beta)
        except _Invalid as exc:
            return _error(400, str(exc), "invalid_request_error", exc.param)
        model = session.get("model")
        if caller.key is not None and isinstance(model, str) and not caller.key.allows(model):
            message = f"key {caller.key.name!r} may not use model {model!r}"
            return _error(403, message, "model_not_allowed", "session.model")
        expires_at = int(state.admission.clock()) + ttl
        name = caller.key.name if caller.key is not None else ""
        value = signer.mint(name, expires_at, session)
        if beta:
            shown["client_secret"] = {"value": value, "expires_at": expires_at}
            return web.json_response(shown)
        return web.json_response({"value": value, "expires_at": expires_at, "session": shown})

    return mint
