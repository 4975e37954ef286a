"""A toy dialect, the proof that a wire is one module plus a registry entry.

The "shout" wire: each client frame is plain text, a prompt; the answer comes
back as ``{"n": <id>, "text": "..."}`` frames, one per text delta, and a last
``{"n": <id>, "done": "<finish reason>"}``. It touches nothing of the daemon
but the seams: the Dialect protocol, the answer events, the writer, and a
:class:`~realtime_daemon.dialects.registry.DialectSpec` served at ``/v1/shout``.
"""

from __future__ import annotations

import asyncio
import functools

import msgspec

from realtime_daemon.dialects import FrameWriter, Resumable
from realtime_daemon.dialects.registry import DialectFactory, DialectSpec, Upgrade
from realtime_daemon.wire.chat import ErrorDetail, Usage, decode_request
from realtime_daemon.wire.chunks import ToolCallDelta
from realtime_daemon.wire.events import Event, Events, Refuse, Reply, Submit, Work

_encode = msgspec.json.encode


class ShoutDialect:
    """Text in, ``{"n", "text"}`` frames out."""

    name = "shout"
    max_concurrent = 1

    def __init__(self, writer: FrameWriter) -> None:
        self._writer = writer

    def _send(self, fields: bytes) -> None:
        # {"n":<id>, ...fields}: the writer puts the id in.
        self._writer.write(b'{"n":', b"," + fields[1:])

    def opened(self) -> None:
        pass

    def receive(self, frame: bytes) -> Events:
        text = frame.decode()
        if text.startswith("later "):
            # I/O the dialect cannot do: the session runs it, then asks what follows.
            return Work(functools.partial(_later, text[6:]), self._looked_up)
        if text.startswith("twice "):  # one frame, two events in order
            return (self._note(text[6:]), self._note(text[6:]))
        return self._submit(text)

    def _submit(self, text: str) -> Submit:
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        return Submit(decode_request(_encode(body)))

    def _note(self, text: str) -> Reply:
        return Reply(functools.partial(self._send, _encode({"note": text})), in_order=True)

    def _looked_up(self, outcome: str | ErrorDetail) -> tuple[Event, ...]:
        if isinstance(outcome, ErrorDetail):
            return (self._note(f"{outcome.code}: {outcome.message}"),)
        return (self._note("looked up"), self._submit(outcome))

    def refused(self, detail: ErrorDetail) -> Event:
        return Refuse(detail)

    def binary(self) -> None:
        return None

    def drain(self) -> None:
        pass

    def expired(self) -> None:
        pass

    def started(self, request_id: str | None) -> ShoutDialect:
        return self

    # The answer's events (wire.chunks.AnswerEvents).
    def text(self, text: str) -> None:
        self._send(_encode({"text": text.upper()}))

    def tool_call(self, call: ToolCallDelta) -> None:
        pass

    def finish(self, reason: str) -> None:
        self._send(_encode({"done": reason}))

    def usage(self, usage: Usage) -> None:
        pass

    def fail(self, detail: ErrorDetail) -> None:
        self.error(detail)

    def error(self, detail: ErrorDetail, request_id: str | None = None) -> None:
        self._send(_encode({"error": detail.message}))

    def cancelled(self, request_id: str) -> None:
        pass

    def release(self, request_id: str) -> None:
        pass


async def _later(text: str) -> str:
    """Work done off the dialect: an await, then the text, or a failure."""
    await asyncio.sleep(0)
    if text == "fail":
        raise RuntimeError("the lookup broke")
    return text


def _build(upgrade: Upgrade) -> DialectFactory:
    def shout(writer: FrameWriter, session_id: str, resume: Resumable | None) -> ShoutDialect:
        return ShoutDialect(writer)

    return shout


SHOUT = DialectSpec(name="shout", build=_build, path=lambda config: "/v1/shout")
"""The registry entry: the whole of what the server needs to serve the wire."""
