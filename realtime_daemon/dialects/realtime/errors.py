"""The Realtime dialect's refusal: an ``error`` event naming the field at fault."""

from __future__ import annotations

from realtime_daemon.wire.chat import ErrorDetail

__all__ = ["Invalid"]


class Invalid(Exception):
    """A client event refused: an ``error`` event with ``code`` and ``param``, and the
    session goes on."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param

    def detail(self, event_id: object = None) -> ErrorDetail:
        """This error as an ``error`` event's detail, about the client event ``event_id``."""
        event_id = event_id if isinstance(event_id, str) else None
        return ErrorDetail(code=self.code, message=str(self), param=self.param, event_id=event_id)
