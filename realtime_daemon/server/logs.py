"""Logging: structlog configured once, JSON lines or console, stdlib routed through it."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TextIO, cast

import structlog
from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["configure_logging", "resolve_format"]


def resolve_format(log_format: str, stream: TextIO) -> str:
    """``auto`` becomes ``console`` on a terminal and ``json`` otherwise."""
    if log_format != "auto":
        return log_format
    return "console" if stream.isatty() else "json"


class _Lossy:
    """A text stream whose lines are dropped when they cannot be written.

    Logging must never stop the daemon: with stderr gone (a closed pipe, a
    restarted journal) a write raises, and from a signal handler that would
    lose the SIGTERM itself.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # ValueError: closed
            self._stream.write(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


class _BadRequests(logging.Filter):
    """aiohttp logs a malformed request (a header over 8 KiB, 100+ headers) at error
    level with a traceback: anyone can write those lines. They become one
    warning, ``bad_http_request``, with the reason and no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            args = record.args if isinstance(record.args, tuple) else ()
            record.peer = str(args[0]) if args else None  # "... request from %s"
            record.msg, record.args = "bad_http_request", None
            record.exc_info, record.exc_text = None, None
            record.reason = exc.message.strip().splitlines()[0][:200]
        return True


def configure_logging(log_format: str, log_level: str, stream: TextIO | None = None) -> None:
    """Send structlog events and stdlib records (aiohttp's) to ``stream`` (stderr).

    Args:
        log_format: ``json``, ``console`` or ``auto``.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        stream: where lines go; stderr by default.
    """
    stream = cast(TextIO, _Lossy(stream or sys.stderr))
    level = logging.getLevelNamesMapping()[log_level.upper()]
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,  # a worker's ``worker`` field
        structlog.stdlib.ExtraAdder(("peer", "reason")),
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if resolve_format(log_format, stream) == "json":
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write per line: workers share stderr, and lines must not interleave.
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _BadRequests) for f in server.filters):
        server.addFilter(_BadRequests())
