"""Dialects: sans-I/O translators between a wire format and the session's events.

A dialect decodes client frames into :mod:`~realtime_daemon.events` (keeping
whatever per-session protocol state its wire has) and encodes what the
session tells it into frames, which it writes through the session's
:class:`~realtime_daemon.outbox.Outbox`. :mod:`.chat` is the chat-completion
dialect of ``/v1/realtime``; another wire is another module with the same
shape.
"""

from __future__ import annotations

from typing import Protocol

from ..events import Event
from ..protocol import Envelope, ErrorDetail

__all__ = ["Dialect"]


class Dialect(Protocol):
    """What the session needs of a dialect.

    Attributes:
        draining: set when the daemon stops: new requests are refused
            (``shutting_down``), control messages still answered.
    """

    draining: bool

    @property
    def max_concurrent(self) -> int:
        """How many answers the session may run at once."""

    def receive(self, frame: bytes) -> Event:
        """Decode one client frame.

        Raises:
            FrameError: a frame that ends the connection (1007).
        """

    def release(self, request_id: str) -> None:
        """``request_id`` is answered: a new request may use it."""

    def chunk(self, envelope: Envelope, request_id: str | None) -> bool:
        """Send one envelope of an answer; whether to ``await outbox.settle()`` now."""

    def error(self, detail: ErrorDetail, request_id: str | None = None) -> None:
        """Send an error envelope."""

    def cancelled(self, request_id: str) -> None:
        """Send the end of an answer cut by ``request.cancel``."""

    def updated(self) -> None:
        """Send the session's effective settings."""
