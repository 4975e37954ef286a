"""Named keys: who a token belongs to, which models it may use, and its limits.

``--keys-file`` is TOML, one ``[[keys]]`` table per key::

    [[keys]]
    name = "web"                      # shown in logs and metrics
    sha256 = "9f86d08..."             # hex digest of the token (or: token = "...")
    models = ["gpt-realtime"]         # default: every model
    disabled = false
    max_sessions = 10                 # sessions at once (held resumable ones count)
    requests_per_minute = 60
    tokens_per_minute = 40000

``--auth-token-file`` tokens are keys too, named ``token-1``, ``token-2``, ...
in file order, without limits. A presented token is hashed once and compared
with every key's digest (``hmac.compare_digest``, all of them, whichever
matches), so the time taken does not say which key, or how much of one,
matched. Tokens are never logged; a key's name is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = ["Key", "KeyFileError", "Keyring", "read_keys", "read_token_file"]

_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
_HEX = re.compile(r"[0-9a-f]{64}")


class KeyFileError(Exception):
    """A keys or token file that cannot be used; the message names the file (never a token)."""


class _KeyEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=_NAME)]
    token: str | None = None
    sha256: str | None = None
    models: tuple[str, ...] | None = None
    disabled: bool = False
    max_sessions: Annotated[int, Meta(ge=1)] | None = None
    requests_per_minute: Annotated[int, Meta(ge=1)] | None = None
    tokens_per_minute: Annotated[int, Meta(ge=1)] | None = None


class _KeysFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: tuple[_KeyEntry, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Key:
    """One named key.

    Attributes:
        name: its name (logs, metrics, Redis counters).
        digest: the SHA-256 of its token.
        models: the models it may use; None: every one.
        disabled: refused, as if absent.
        max_sessions: sessions at once at most; None: no limit.
        requests_per_minute: requests a minute at most; None: no limit.
        tokens_per_minute: the engine's tokens a minute at most; None: no limit.
    """

    name: str
    digest: bytes
    models: frozenset[str] | None = None
    disabled: bool = False
    max_sessions: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def __repr__(self) -> str:
        return f"Key(name={self.name!r})"  # never the digest

    def allows(self, model: str) -> bool:
        """Whether this key may use ``model`` (``*`` in ``models`` allows every one)."""
        return self.models is None or model in self.models or "*" in self.models

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return (
            self.max_sessions is not None
            or self.requests_per_minute is not None
            or self.tokens_per_minute is not None
        )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def read_keys(path: str) -> tuple[Key, ...]:
    """The keys of a ``--keys-file``.

    Raises:
        KeyFileError: unreadable, not TOML, an unknown field, a bad value, a key
            with neither or both of ``token`` and ``sha256``, a name used twice.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read keys file {path}: {exc.strerror}") from None
    try:
        entries = msgspec.toml.decode(data, type=_KeysFile).keys
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        # msgspec's message names the field, not its value: no token is shown.
        raise KeyFileError(f"keys file {path}: {exc}") from None
    if not entries:
        raise KeyFileError(f"keys file {path} holds no [[keys]]")
    keys = []
    for entry in entries:
        if (entry.token is None) == (entry.sha256 is None):
            raise KeyFileError(f"keys file {path}: key {entry.name!r} needs token or sha256")
        if entry.sha256 is not None and not _HEX.fullmatch(entry.sha256.lower()):
            raise KeyFileError(f"keys file {path}: key {entry.name!r}: sha256 is not 64 hex")
        digest = (
            _digest(entry.token) if entry.token is not None else bytes.fromhex(entry.sha256 or "")
        )
        keys.append(
            Key(
                entry.name,
                digest,
                frozenset(entry.models) if entry.models is not None else None,
                entry.disabled,
                entry.max_sessions,
                entry.requests_per_minute,
                entry.tokens_per_minute,
            )
        )
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise KeyFileError(f"keys file {path}: a key name is used twice")
    return tuple(keys)


def read_token_file(path: str) -> tuple[Key, ...]:
    """The tokens of an ``--auth-token-file`` (one a line, ``#`` comments), as keys
    ``token-1``, ``token-2``, ... without limits.

    Raises:
        KeyFileError: unreadable, or no token in it.
    """
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read token file {path}: {exc}") from None
    tokens = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not tokens:
        raise KeyFileError(f"token file {path} holds no token")
    return tuple(Key(f"token-{n}", _digest(t)) for n, t in enumerate(tokens, 1))


class Keyring:
    """The keys in force, from ``--keys-file`` and ``--auth-token-file``, reloadable.

    Args:
        keys_file: the keys file, if any.
        token_file: the token file, if any.

    Raises:
        KeyFileError: a file cannot be used.
    """

    def __init__(self, keys_file: str | None, token_file: str | None) -> None:
        self.keys_file, self.token_file = keys_file, token_file
        self._keys: tuple[Key, ...] = ()
        self._by_name: dict[str, Key] = {}
        self._named: frozenset[str] = frozenset()  # the keys file's, enabled
        self.reload()

    def reload(self) -> frozenset[str]:
        """Read the files again; on failure the keys in force stay.

        Returns:
            the names of the keys file's keys that were in force and are no longer
            (removed or disabled): their sessions are to be closed. (The token
            file's keep their earlier behaviour: open connections stay.)

        Raises:
            KeyFileError: a file cannot be used.
        """
        named = read_keys(self.keys_file) if self.keys_file is not None else ()
        tokens = read_token_file(self.token_file) if self.token_file is not None else ()
        before = self._named
        self._named = frozenset(k.name for k in named if not k.disabled)
        self._keys = named + tokens
        self._by_name = {k.name: k for k in self._keys}
        return before - self._named

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    def named(self, name: str) -> Key | None:
        """The enabled key named ``name``, if there is one."""
        key = self._by_name.get(name)
        return key if key is not None and not key.disabled else None

    def lookup(self, token: str) -> Key | None:
        """The enabled key whose token ``token`` is, in time independent of which."""
        digest = _digest(token)
        found: Key | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest) and found is None:
                found = key
        return found if found is not None and not found.disabled else None
