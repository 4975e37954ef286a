"""What ``chat`` and ``bench`` share: the daemon's address, how to reach it, what went wrong.

- :func:`daemon_url` turns what the user gave (``ws://``, ``wss://``,
  ``http://``, ``https://``, or ``HOST:PORT``; or ``REALTIME_DAEMON_URL``)
  into the WebSocket URL;
- :func:`connection_options` adds ``--token``, ``--token-file``,
  ``--header``, ``--cafile`` and ``--insecure`` to a command, and
  :class:`Reach` holds what they say (picklable, for bench's processes);
- :func:`connect_failure` and :class:`Refusals` say, in one line each, why a
  connection or an upgrade failed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, TypeVar

import aiohttp
import click
from yarl import URL

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_URL",
    "URL_ENV",
    "Reach",
    "Refusals",
    "connect_failure",
    "connection_options",
    "daemon_url",
    "is_address",
    "why_not_connected",
]

DEFAULT_PATH = "/v1/realtime"
DEFAULT_URL = f"ws://127.0.0.1:8000{DEFAULT_PATH}"
URL_ENV = "REALTIME_DAEMON_URL"

_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@?#]+):[0-9]+")
_FIRST_LINE_BYTES = 1024

F = TypeVar("F", bound=Callable[..., Any])


def is_address(text: str) -> bool:
    """Whether ``text`` names a daemon: a ws, wss, http or https URL, or exactly HOST:PORT."""
    scheme, sep, _ = text.partition("://")
    return (bool(sep) and scheme.lower() in _SCHEMES) or _HOST_PORT.fullmatch(text) is not None


def daemon_url(address: str | None) -> str:
    """The WebSocket URL of a daemon.

    ``address``, else ``REALTIME_DAEMON_URL``, else the default address:
    ``http`` becomes ``ws``, ``https`` becomes ``wss``, ``HOST:PORT`` is
    ``ws://HOST:PORT``, and a URL without a path gets ``/v1/realtime``.

    Raises:
        click.BadParameter: the address is none of these.
    """
    given = address or os.environ.get(URL_ENV) or DEFAULT_URL
    text = f"ws://{given}" if _HOST_PORT.fullmatch(given) else given
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in _SCHEMES or not rest:
        where = "'URL'" if address else URL_ENV
        raise click.BadParameter(
            f"{given!r} is not a ws://, wss://, http:// or https:// URL, nor HOST:PORT",
            param_hint=where,
        )
    url = URL(f"{_SCHEMES[scheme.lower()]}://{rest}")
    if url.path in ("", "/"):
        url = url.with_path(DEFAULT_PATH, keep_query=True, keep_fragment=True)
    return str(url)


@dataclasses.dataclass(frozen=True)
class Reach:
    """How to reach the daemon: extra headers (the bearer token among them) and TLS."""

    headers: tuple[tuple[str, str], ...] = ()
    cafile: str | None = None
    insecure: bool = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Reach:
        """Take the options :func:`connection_options` added out of ``options``.

        Raises:
            click.BadParameter: a header is not ``Name: value``, the token
                file or the CA file cannot be read.
        """
        token = _token(options.pop("token"), options.pop("token_file"))
        reach = cls(
            _headers(options.pop("header"), token), options.pop("cafile"), options.pop("insecure")
        )
        reach.ssl()  # a bad --cafile is a usage error now, not a failed connection later
        return reach

    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)

    def ssl(self) -> ssl.SSLContext | bool:
        """What aiohttp's ``ssl=`` takes: False with --insecure, a context with --cafile.

        Raises:
            click.BadParameter: the CA file cannot be read.
        """
        if self.insecure:
            return False
        if self.cafile:
            try:
                return ssl.create_default_context(cafile=self.cafile)
            except (OSError, ssl.SSLError) as exc:
                raise click.BadParameter(f"{self.cafile}: {exc}", param_hint="'--cafile'") from None
        return True


_OPTIONS = (
    click.option(
        "--token",
        envvar="REALTIME_DAEMON_TOKEN",
        default=None,
        help="Bearer token (or REALTIME_DAEMON_TOKEN).",
    ),
    click.option("--token-file", default=None, help="Read the bearer token from this file."),
    click.option(
        "--header", multiple=True, help="An extra request header, 'Name: value' (repeatable)."
    ),
    click.option("--cafile", default=None, help="CA certificates to trust for wss://."),
    click.option("--insecure", is_flag=True, help="Do not check the wss:// certificate."),
)


def connection_options(command: F) -> F:
    """Add the options :meth:`Reach.from_options` reads to a click command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def _token(token: str | None, token_file: str | None) -> str | None:
    if token_file:
        try:
            with open(token_file) as file:
                return file.readline().strip() or None
        except OSError as exc:
            raise click.BadParameter(
                f"{token_file}: {exc.strerror}", param_hint="'--token-file'"
            ) from None
    return token


def _headers(pairs: Sequence[str], token: str | None) -> tuple[tuple[str, str], ...]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not 'Name: value'", param_hint="'--header'")
        headers[name.strip()] = value.strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return tuple(headers.items())


def connect_failure(url: str, exc: BaseException) -> str:
    """``cannot connect to URL: why``, in the system's words (not aiohttp's, which name
    an ``ssl:default`` even for ``ws://``)."""
    return f"cannot connect to {url}: {why_not_connected(exc)}"


def why_not_connected(exc: BaseException) -> str:
    """Why a connection could not be made, in a few words (``Connection refused``)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
        detail = getattr(error, "verify_message", None) or str(error)
        return f"certificate not trusted: {detail} (--cafile or --insecure)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, socket.gaierror):
        return str(exc.strerror)
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class Refusals:
    """The first line of a refused upgrade's body: aiohttp's handshake error carries only
    the status, so this trace reads the line before aiohttp discards the response (asking
    again would make the daemon refuse, log and count the client twice)."""

    def __init__(self) -> None:
        self.line = ""

    def trace(self) -> aiohttp.TraceConfig:
        """A trace config for the client session (``trace_configs=[...]``)."""
        config = aiohttp.TraceConfig()
        config.on_request_end.append(self._ended)
        return config

    async def _ended(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        response = params.response
        if response.status == 101:
            return
        body = b""
        try:
            while b"\n" not in body and len(body) < _FIRST_LINE_BYTES:
                piece = await response.content.read(_FIRST_LINE_BYTES - len(body))
                if not piece:
                    break
                body += piece
        except (aiohttp.ClientError, OSError):
            pass
        self.line = body.decode(errors="replace").strip().partition("\n")[0].strip()

    def describe(self, exc: aiohttp.WSServerHandshakeError) -> str:
        """``refused: HTTP <status> <the daemon's first line>``, with its Retry-After."""
        line = f"refused: HTTP {exc.status}"
        reason = self.line
        for prefix in (f"{exc.status}: ", f"{exc.status} "):  # aiohttp's "404: Not Found"
            reason = reason.removeprefix(prefix)
        if reason:
            line += f" {reason}"
        retry = exc.headers.get("Retry-After") if exc.headers else None
        return line + (f" (Retry-After: {retry} s)" if retry else "")
