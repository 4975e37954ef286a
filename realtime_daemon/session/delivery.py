"""One answer's delivery: what its engine hands over is written at once, through its output."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from realtime_daemon.session.answers import Answer
from realtime_daemon.session.outbox import Outbox
from realtime_daemon.wire.chat import Envelope

__all__ = ["AnswerDelivery"]


class AnswerDelivery:
    """One answer's :class:`~realtime_daemon.engines.base.Delivery`.

    Args:
        write: writes a batch of the answer's envelopes through its output (the
            session's ``write_answer``).
        outbox: the session's outbox, which numbers and sends the frames.
        answer: the answer.
    """

    __slots__ = ("_answer", "_outbox", "_write")

    def __init__(
        self,
        write: Callable[[Answer, Sequence[Envelope]], None],
        outbox: Outbox,
        answer: Answer,
    ) -> None:
        self._write = write
        self._answer = answer
        self._outbox = outbox

    def send(self, batch: list[Envelope]) -> bool:
        if self._answer.context.is_stopped():
            return True  # cut or cancelled: its task ends at its next await
        outbox = self._outbox
        outbox.hold()
        try:
            self._write(self._answer, batch)
        finally:
            outbox.flush()
        return outbox.lagging

    def write(self, batch: Sequence[Envelope]) -> bool:
        self._write(self._answer, batch)
        return self._outbox.due

    def flush(self) -> None:
        self._outbox.flush()

    async def ready(self) -> None:
        await self._outbox.settle()
