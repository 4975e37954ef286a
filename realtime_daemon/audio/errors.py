"""The one error of the audio layer: what a client's audio (or a request on it) cannot be."""

from __future__ import annotations

__all__ = ["AudioError"]


class AudioError(Exception):
    """Audio that cannot be taken, in the Realtime API's terms: the dialect sends it
    as an ``error`` event, and the session goes on.

    Attributes:
        code: the error's code (``invalid_value``, ``input_audio_buffer_full``,
            ``input_audio_buffer_commit_empty``).
        message: one sentence for the client.
        param: the field at fault (``audio``, ``format.type``), or None.
    """

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
