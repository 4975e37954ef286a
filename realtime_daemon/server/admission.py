"""Who gets in, and how fast: tokens, origins, proxies, rate limits. No I/O but files.

The handler asks :meth:`Admission.check` before it upgrades a connection, so
a refused client costs no engine work; a refusal is an HTTP status with a
one-line reason. Tokens are compared in constant time and never logged or
echoed.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from realtime_daemon.wire.http import Refusal

__all__ = [
    "PROTOCOL",
    "REALTIME_PROTOCOL",
    "REALTIME_TOKEN_PREFIX",
    "TOKEN_PROTOCOL_PREFIX",
    "Admission",
    "Refusal",
    "TokenFileError",
    "Tokens",
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


class TokenFileError(Exception):
    """The token file cannot be read, or holds no token."""


class Tokens:
    """The bearer tokens of ``--auth-token-file``: one a line, ``#`` comments.

    Args:
        path: the token file.

    Raises:
        TokenFileError: unreadable, or no token in it.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._tokens: tuple[bytes, ...] = ()
        self.reload()

    def reload(self) -> int:
        """Read the file again; on failure the tokens in force stay. Returns the count."""
        try:
            lines = self.path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(f"cannot read token file {self.path}: {exc}") from None
        tokens = tuple(
            line.strip().encode() for line in lines if line.strip() and not line.startswith("#")
        )
        if not tokens:
            raise TokenFileError(f"token file {self.path} holds no token")
        self._tokens = tokens
        return len(tokens)

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is one of the tokens, in time independent of which."""
        candidate = presented.encode()
        found = False
        for token in self._tokens:
            found |= hmac.compare_digest(candidate, token)
        return found


class Admission:
    """The checks an upgrade passes, in order: shutdown, capacity, origin, token.

    Args:
        tokens: the accepted tokens, or None to ask for none.
        allowed_origins: origins let in besides the daemon's own; ``*`` any.
        max_connections: open WebSockets at most.
    """

    def __init__(
        self, tokens: Tokens | None, allowed_origins: Sequence[str], max_connections: int
    ) -> None:
        self.tokens = tokens
        self._any_origin = "*" in allowed_origins
        self._origins = {_origin(o) for o in allowed_origins if o != "*"}
        self.max_connections = max_connections

    def check(
        self, headers: Mapping[str, str], open_connections: int, draining: bool
    ) -> Refusal | None:
        """None to let the upgrade in, else why not."""
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
        if self.tokens is not None and not self._authorized(headers):
            return Refusal(
                401,
                "a valid bearer token is required",
                "unauthorized",
                {"WWW-Authenticate": "Bearer"},
            )
        return None

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

    def authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether a request presents a valid token, or none is asked for."""
        return self.tokens is None or self._authorized(headers)

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        assert self.tokens is not None
        token = presented_token(headers)
        return token is not None and self.tokens.accepts(token)


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
