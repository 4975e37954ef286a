"""Where the daemon listens: binding its sockets, their addresses as text, TLS."""

from __future__ import annotations

import os
import socket
import ssl
import stat
from typing import Any

from realtime_daemon.config import Config

__all__ = [
    "BACKLOG",
    "BindError",
    "address_fields",
    "address_text",
    "bind_error",
    "bind_sockets",
    "format_address",
    "tls_context",
]

BACKLOG = 128  # as aiohttp's sites


class BindError(Exception):
    """The daemon cannot listen where it was told; the message names host and port."""


def bind_sockets(config: Config) -> list[socket.socket]:
    """Listening sockets on ``config.unix``, or on every address ``config.host`` names.

    As asyncio's ``create_server`` binds them (address reuse, IPv6 only on
    IPv6 sockets, a stale Unix socket file replaced), so that one daemon, the
    supervisor of ``--workers``, or a test all listen the same way.

    Raises:
        BindError: an address cannot be bound; the message names it.
    """
    where = config.unix or format_address(config.host, config.port)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, address in _targets(config):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise bind_error(where, exc) from None
    return sockets


def _targets(config: Config) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, Any]]:
    """The addresses to bind: the Unix socket (a stale file removed), or what the host names.

    Raises:
        OSError: the host does not resolve.
    """
    if config.unix:
        if os.path.exists(config.unix) and stat.S_ISSOCK(os.stat(config.unix).st_mode):
            os.unlink(config.unix)
        return [(socket.AF_UNIX, socket.SOCK_STREAM, 0, config.unix)]
    infos = socket.getaddrinfo(
        config.host or None, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    return list(dict.fromkeys((f, k, p, a) for f, k, p, _, a in infos))


def bind_error(where: str, exc: OSError) -> BindError:
    """The one-line error for an address that cannot be listened on."""
    # Say the address once, our way, with the system's reason.
    # (Name-resolution errors carry negative errnos of their own.)
    if exc.errno is not None and exc.errno > 0:
        reason = os.strerror(exc.errno)
    else:
        reason = exc.strerror or str(exc)
    return BindError(f"cannot listen on {where}: {reason.lower()}")


def address_fields(address: str | tuple[Any, ...]) -> dict[str, object]:
    """A listening address as log fields: ``unix``, or ``host`` and ``port``."""
    if isinstance(address, str):
        return {"unix": address}
    return {"host": address[0], "port": address[1]}


def address_text(address: str | tuple[Any, ...]) -> str:
    """A listening address as text: a socket path, or host:port."""
    return address if isinstance(address, str) else format_address(address[0], address[1])


def format_address(host: str, port: int) -> str:
    """``host:port``, the host in brackets when it is an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context, if a certificate is configured.

    Raises:
        ValueError: only one of the two files is given.
        OSError, ssl.SSLError: they cannot be loaded.
    """
    if not config.tls_certfile and not config.tls_keyfile:
        return None
    if not (config.tls_certfile and config.tls_keyfile):
        raise ValueError("--tls-certfile and --tls-keyfile go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_certfile, config.tls_keyfile)
    return context
