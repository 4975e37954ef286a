"""The daemon's settings: one frozen object, built once by the CLI."""

from __future__ import annotations

import dataclasses

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "Config"]

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Everything ``realtime-daemon serve`` can be told.

    Attributes:
        host: address to listen on.
        port: TCP port; 0 picks a free one.
        path: URL path of the WebSocket endpoint.
        engine: built-in or installed engine name, or ``module:attr``.
        echo_delay_ms: the echo engine's pause before each character.
        request_queue_size: decoded requests a connection holds before
            the daemon stops reading its socket.
        max_message_size: largest client message in bytes; larger closes 1009.
        log_format: ``json``, ``console``, or ``auto`` (console on a terminal).
        log_level: lowest level logged.
        shutdown_timeout: seconds answers in progress get to finish on SIGTERM.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    path: str = "/v1/realtime"
    engine: str = "echo"
    echo_delay_ms: float = 10.0
    request_queue_size: int = 64
    max_message_size: int = 1024 * 1024
    log_format: str = "auto"
    log_level: str = "info"
    shutdown_timeout: float = 10.0
