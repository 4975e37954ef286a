"""Ephemeral client secrets: short-lived, signed stand-ins for a key, for browsers.

A backend holding a key mints a secret (``POST /v1/realtime/client_secrets``)
and hands it to a page, which connects with it as its bearer token or as the
subprotocol ``openai-insecure-api-key.<secret>``. A secret is
``ek_<payload>.<signature>``: the payload (base64url JSON) names the key, the
expiry and the session configuration; the signature is HMAC-SHA256 over
``ek_<payload>`` with ``--secret-key-file``'s bytes. Any instance with the same
file checks it with no shared state; a changed byte, another signing key, or
a past expiry is refused. The key is looked up when the secret is used, so a
key removed or disabled takes its secrets with it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

import msgspec

__all__ = [
    "PREFIX",
    "Claims",
    "SecretKeyError",
    "Signer",
    "is_client_secret",
    "read_secret_key",
]

PREFIX = "ek_"
"""What every client secret starts with, as OpenAI's do."""

_MIN_KEY_BYTES = 16


class SecretKeyError(Exception):
    """``--secret-key-file`` cannot be used."""


class _Payload(msgspec.Struct, frozen=True):
    k: str  # the key's name
    e: int  # expires at (Unix seconds)
    n: str  # a nonce: two secrets minted at once differ
    s: dict[str, Any] | None = None  # the session configuration


@dataclasses.dataclass(frozen=True, slots=True)
class Claims:
    """What a valid secret says.

    Attributes:
        key: the name of the key that minted it.
        expires_at: Unix seconds after which it is refused.
        session: the session configuration it starts with, if any.
    """

    key: str
    expires_at: int
    session: dict[str, Any] | None


def read_secret_key(path: str) -> bytes:
    """The signing key: the file's bytes, surrounding whitespace left out.

    Raises:
        SecretKeyError: unreadable, or shorter than 16 bytes.
    """
    try:
        data = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SecretKeyError(f"cannot read secret key file {path}: {exc.strerror}") from None
    if len(data) < _MIN_KEY_BYTES:
        raise SecretKeyError(f"secret key file {path} holds fewer than {_MIN_KEY_BYTES} bytes")
    return data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Mints and checks client secrets with one signing key.

    Args:
        key: the signing key (:func:`read_secret_key`).
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def mint(self, key: str, expires_at: int, session: dict[str, Any] | None) -> str:
        """A secret for the key named ``key``, valid until ``expires_at``."""
        payload = _Payload(k=key, e=expires_at, n=secrets.token_urlsafe(9), s=session)
        body = PREFIX + _b64(msgspec.json.encode(payload))
        return f"{body}.{self._sign(body)}"

    def check(self, secret: str, now: float) -> Claims | None:
        """What ``secret`` says, or None: not one of ours, altered, or expired."""
        body, dot, signature = secret.rpartition(".")
        if not dot or not body.startswith(PREFIX):
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        try:
            payload = msgspec.json.decode(_unb64(body[len(PREFIX) :]), type=_Payload)
        except (ValueError, msgspec.DecodeError):
            return None  # signed by us, so only a bug of ours gets here
        if payload.e <= now:
            return None
        return Claims(payload.k, payload.e, payload.s)


def is_client_secret(token: str) -> bool:
    """Whether ``token`` has a client secret's shape (it may still be invalid)."""
    return token.startswith(PREFIX)
