"""Who gets in: keys and client secrets, origins, proxies. No I/O.

The handler asks :meth:`Admission.check` before it upgrades a connection, so
a refused client costs no engine work; a refusal is an HTTP status with a
one-line reason, an admission says who the caller is (:class:`Caller`: its
key, its client secret's session). Tokens are compared in constant time
(:mod:`.keys`) and never logged or echoed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from realtime_daemon.server.client_secrets import Signer, is_client_secret
from realtime_daemon.server.keys import Key, Keyring
from realtime_daemon.wire.http import Refusal

__all__ = [
    "ANYONE",
    "PROTOCOL",
    "REALTIME_PROTOCOL",
    "REALTIME_TOKEN_PREFIX",
    "TOKEN_PROTOCOL_PREFIX",
    "UNAUTHORIZED",
    "Admission",
    "Caller",
    "Refusal",
    "TrustedProxies",
    "check_proxy",
    "client_address",
    "normalize_origin",
    "presented_token",
]

PROTOCOL = "realtime-daemon"
"""The subprotocol a browser offers beside its token; the only one echoed back."""

TOKEN_PROTOCOL_PREFIX = "bearer."
"""A browser's token travels as the subprotocol ``bearer.<token>``."""

REALTIME_PROTOCOL = "realtime"
"""The subprotocol OpenAI's browser clients offer, echoed back to them."""

REALTIME_TOKEN_PREFIX = "openai-insecure-api-key."
"""OpenAI's browser clients send their key as this subprotocol."""


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """Who an admitted request is.

    Attributes:
        key: the named key it presented (or that minted its client secret);
            None when the daemon asks for none.
        session: the session configuration of its client secret, if it presented one.
        secret: whether it presented a client secret rather than a key's token.
    """

    key: Key | None = None
    session: dict[str, Any] | None = None
    secret: bool = False


ANYONE = Caller()
"""The caller of a daemon that asks for no key."""


class Admission:
    """The checks an upgrade passes, in order: shutdown, capacity, origin, key.

    Args:
        keyring: the keys accepted, or None to ask for none.
        allowed_origins: origins let in besides the daemon's own; ``*`` any.
        max_connections: open WebSockets at most.
        signer: checks client secrets; None when none are minted.
        clock: Unix time, for client secrets' expiry.
    """

    def __init__(
        self,
        keyring: Keyring | None,
        allowed_origins: Sequence[str],
        max_connections: int,
        signer: Signer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keyring = keyring
        self.signer = signer
        self.clock = clock
        self._any_origin = "*" in allowed_origins
        self._origins = {_origin(o) for o in allowed_origins if o != "*"}
        self.max_connections = max_connections

    def check(
        self, headers: Mapping[str, str], open_connections: int, draining: bool
    ) -> Refusal | Caller:
        """Who the upgrade is, to let it in, else why not."""
        if draining:
            return Refusal(503, "server shutting down", "shutting_down", {"Retry-After": "1"})
        if open_connections >= self.max_connections:
            return Refusal(
                503,
                "too many connections, retry later",
                "too_many_connections",
                {"Retry-After": "1"},
            )
        origin = headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, headers.get("Host", "")):
            return Refusal(403, "origin not allowed", "origin_not_allowed")
        caller = self.identify(headers)
        if caller is None:
            return UNAUTHORIZED
        return caller

    def _origin_allowed(self, origin: str, host: str) -> bool:
        if self._any_origin:
            return True
        normalized = _origin(origin)
        if normalized in self._origins:
            return True
        # The daemon's own origin (a page it would serve itself), but only by
        # address: a name in Host proves nothing, since a page of any site
        # whose DNS points at the daemon sends its own name as both Origin
        # and Host (DNS rebinding). Names are let in with --allowed-origin.
        scheme = normalized.partition("://")[0]
        return normalized == _origin(f"{scheme}://{host}") and _is_address(
            urlsplit(normalized).hostname
        )

    def identify(self, headers: Mapping[str, str], secrets: bool = True) -> Caller | None:
        """Who a request is by the token it presents; None: no valid one, and one is
        asked for. ``secrets``: whether a client secret may stand for its key."""
        token = presented_token(headers)
        if token is not None and self.signer is not None and is_client_secret(token):
            if not secrets:
                return None  # a secret opens a connection; it mints nothing
            claims = self.signer.check(token, self.clock())
            if claims is None:
                return None
            key = self.keyring.named(claims.key) if self.keyring is not None else None
            if self.keyring is not None and key is None:
                return None  # its key was removed or disabled
            return Caller(key, claims.session or {}, secret=True)
        if self.keyring is None:
            return ANYONE
        key = self.keyring.lookup(token) if token is not None else None
        return Caller(key) if key is not None else None


UNAUTHORIZED = Refusal(
    401, "a valid bearer token is required", "unauthorized", {"WWW-Authenticate": "Bearer"}
)
"""The refusal of a request without a valid key or client secret."""


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The bearer token an upgrade presents: the Authorization header's, else a
    browser's token subprotocol's."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for offered in headers.get("Sec-WebSocket-Protocol", "").split(","):
        offered = offered.strip()
        for prefix in (TOKEN_PROTOCOL_PREFIX, REALTIME_TOKEN_PREFIX):
            if offered.startswith(prefix):
                return offered[len(prefix) :]
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]``, lower-case, the scheme's default port left out.

    Raises:
        ValueError: ``origin`` is not an http(s) origin (a path, no host, a bad port).
    """
    parts = urlsplit(origin.strip().lower())
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{origin!r} has an invalid port") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin such as https://app.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{origin!r} is not an origin: it has more than scheme, host and port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def _is_address(host: str | None) -> bool:
    """Whether ``host`` is an IP address (or ``localhost``), not a DNS name."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return True


def check_proxy(entry: str) -> None:
    """Raise ValueError if ``entry`` is not ``*``, an address or a network."""
    if entry != "*" and _network(entry) is None:
        raise ValueError(f"{entry!r} is not an address, a network (10.0.0.0/8) or '*'")


def _origin(origin: str) -> str:
    try:
        return normalize_origin(origin)
    except ValueError:
        return origin.strip().lower()  # a client's odd Origin matches nothing


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` names the client, parsed once.

    Args:
        entries: addresses or networks (``10.0.0.0/8``), or ``*``; entries
            that are neither are ignored.
    """

    def __init__(self, entries: Sequence[str]) -> None:
        self.enabled = bool(entries)
        self._any = "*" in entries
        self._networks = tuple(n for n in map(_network, entries) if n is not None)

    def __contains__(self, address: str | None) -> bool:
        if self._any or not address:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None, trusted: TrustedProxies) -> str:
    """The client's address: the peer, or what trusted proxies say it is.

    ``X-Forwarded-For`` is read from the right, skipping trusted proxies; the
    first address that is not one is the client. A Unix-socket peer (no
    address) counts as trusted whenever any proxy is.

    Args:
        peer: the connection's remote address.
        forwarded_for: the X-Forwarded-For header, if any.
        trusted: the trusted proxies.
    """
    if not trusted.enabled or not forwarded_for or peer not in trusted:
        return peer or ""
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else (peer or "")
