"""One Realtime response: what an answer says (neutral events) becomes its events.

A response opens output items as the chunks need them (an assistant
message for text, a ``function_call`` per streamed tool call), streams
their deltas, and closes them all, in order, when it ends: completed (by
the chunks' ``finish_reason``), cancelled, or failed. ``response.done`` is
always the last event of a response, whichever way it ended.
"""

from __future__ import annotations

from typing import Any

import msgspec

from realtime_daemon.dialects import FrameWriter
from realtime_daemon.dialects.realtime.conversation import Conversation
from realtime_daemon.dialects.realtime.wire import Names, Settings
from realtime_daemon.dialects.realtime.wire import usage as _usage
from realtime_daemon.wire.chat import ErrorDetail, Usage, frame_tail
from realtime_daemon.wire.chunks import ToolCallDelta

__all__ = ["Response", "Writer", "delta_head"]

_encoder = msgspec.json.Encoder()


class Writer:
    """Writes server events ``{"type": ..., "event_id": "event_<n>", ...}``, ``n`` the
    frame's number, given by the :class:`~realtime_daemon.dialects.FrameWriter`."""

    __slots__ = ("_out",)

    def __init__(self, out: FrameWriter) -> None:
        self._out = out

    def event(self, kind: str, fields: dict[str, Any]) -> None:
        """Send ``{"type": kind, "event_id": ..., **fields}``."""
        tail = frame_tail(_encoder.encode(fields))
        self._out.write(b'{"type":%b,"event_id":"event_' % _encoder.encode(kind), tail)

    def delta(self, head: bytes, text: str) -> None:
        """Send a text delta: ``head`` (the event's fields up to its ``event_id``,
        made once per item by :func:`delta_head`), then the id and the text.
        The per-token path: no dict, no Struct."""
        self._out.write(head, b'","delta":%b}' % _encoder.encode(text))


def delta_head(kind: str, response_id: str, item_id: str, output_index: int) -> bytes:
    """The bytes every text delta of one content part starts with (see :meth:`Writer.delta`)."""
    fields = {
        "type": kind,
        "response_id": response_id,
        "item_id": item_id,
        "output_index": output_index,
        "content_index": 0,
    }
    return _encoder.encode(fields)[:-1] + b',"event_id":"event_'


# finish_reason -> (status, status_details.reason); any other finish completes.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class Response:
    """One response's output items and events.

    Args:
        response_id: its id (``resp_...``).
        names: the client's shape.
        writer: sends its events.
        settings: the settings it runs with (shown in its object).
        conversation: the conversation its output joins; None out of band.
        conversation_id: the conversation's id, shown in the response object.
        metadata: the client's metadata for it.
    """

    def __init__(
        self,
        response_id: str,
        names: Names,
        writer: Writer,
        settings: Settings,
        conversation: Conversation | None,
        conversation_id: str,
        metadata: dict[str, str] | None,
    ) -> None:
        self.id = response_id
        self._names = names
        self._writer = writer
        self._emit = writer.event
        self._settings = settings
        self._conversation = conversation
        self._conversation_id = conversation_id if conversation is not None else None
        self._metadata = metadata
        self.output: list[dict[str, Any]] = []
        self._previous: list[str | None] = []  # each output item's previous_item_id
        self._text: dict[str, Any] | None = None  # the open assistant message
        self._delta_head = b""  # its text deltas' first bytes
        self._parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}  # open function calls by tool index
        self._arguments: dict[str, list[str]] = {}  # their argument pieces, by item id
        self._index: dict[str, int] = {}  # output_index by item id
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self.created = False
        self.done = False

    def start(self) -> None:
        """Send ``response.created``."""
        self.created = True
        self._emit("response.created", {"response": self._object("in_progress")})

    # -- the answer's events (wire.chunks.AnswerEvents) ----------------------------------

    def text(self, text: str) -> None:
        """The answer's text goes on."""
        if not self.done:
            self._text_delta(text)

    def tool_call(self, call: ToolCallDelta) -> None:
        """A function call starts or goes on."""
        if not self.done:
            self._call_delta(call)

    def finish(self, reason: str) -> None:
        """The engine's finish reason, for the status at the end."""
        self._finish = reason

    def usage(self, usage: Usage) -> None:
        """The engine's token counts, shown in ``response.done``."""
        self._usage = _usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)

    def fail(self, detail: ErrorDetail, kind: str = "server_error") -> None:
        """The engine or its upstream failed the response."""
        error = {"type": kind, "code": detail.code, "message": detail.message}
        self._end("failed", {"type": "failed", "error": error})

    def _text_delta(self, text: str) -> None:
        item = self._text
        if item is None:
            item = self._text = self._open({"type": "message", "role": "assistant", "content": []})
            index = len(self.output) - 1
            self._delta_head = delta_head(self._names.text_delta, self.id, item["id"], index)
            self._emit(
                "response.content_part.added",
                {**self._where(item), "content_index": 0, "part": {"type": "text", "text": ""}},
            )
        self._parts.append(text)
        self._writer.delta(self._delta_head, text)

    def _call_delta(self, call: ToolCallDelta) -> None:
        item = self._calls.get(call.index)
        if item is None:
            call_id = call.id or self._new_id("call")
            item = self._calls[call.index] = self._open(
                {
                    "type": "function_call",
                    "name": call.name or "",
                    "call_id": call_id,
                    "arguments": "",
                }
            )
            self._arguments[item["id"]] = []
        elif call.name and not item["name"]:
            item["name"] = call.name
        if call.arguments:
            self._arguments[item["id"]].append(call.arguments)
            self._emit(
                "response.function_call_arguments.delta",
                {**self._where(item), "call_id": item["call_id"], "delta": call.arguments},
            )

    # -- items -----------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        if self._conversation is not None:
            return self._conversation.new_id(prefix)
        return f"{prefix}_{self.id}_{len(self.output)}"

    def _open(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Add an output item (``in_progress``) and announce it."""
        item = {
            "id": self._new_id("item"),
            "object": "realtime.item",
            "status": "in_progress",
            **fields,
        }
        self._index[item["id"]] = len(self.output)
        self.output.append(item)
        previous = None
        if self._conversation is not None:
            previous = self._conversation.append(item)
            self._emit(self._names.item_added, {"previous_item_id": previous, "item": item})
        self._previous.append(previous)
        self._emit(
            "response.output_item.added",
            {"response_id": self.id, "output_index": len(self.output) - 1, "item": item},
        )
        return item

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "response_id": self.id,
            "item_id": item["id"],
            "output_index": self._index[item["id"]],
        }

    def _close_items(self, status: str) -> None:
        """Close every open item, in output order, with ``status``."""
        for index, item in enumerate(self.output):
            if item["status"] != "in_progress":
                continue
            where = {"response_id": self.id, "item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                self._close_message(item, where)
            else:
                item["arguments"] = "".join(self._arguments[item["id"]])
                self._emit(
                    "response.function_call_arguments.done",
                    {
                        **where,
                        "call_id": item["call_id"],
                        "name": item["name"],
                        "arguments": item["arguments"],
                    },
                )
            item["status"] = status
            self._emit(
                "response.output_item.done",
                {"response_id": self.id, "output_index": index, "item": item},
            )
            if self._conversation is not None:
                self._conversation.settle(item)
                if self._names.item_done is not None:
                    self._emit(
                        self._names.item_done,
                        {"previous_item_id": self._previous[index], "item": item},
                    )

    def _close_message(self, item: dict[str, Any], where: dict[str, Any]) -> None:
        """The assistant message's last events: its whole text."""
        text = "".join(self._parts)
        self._emit(self._names.text_done, {**where, "content_index": 0, "text": text})
        self._emit(
            "response.content_part.done",
            {**where, "content_index": 0, "part": {"type": "text", "text": text}},
        )
        item["content"] = [{"type": self._names.text_part, "text": text}]

    # -- the end ---------------------------------------------------------------

    def complete(self) -> None:
        """The engine's answer ended: ``completed``, or ``incomplete`` when it was cut
        by the token limit or a content filter."""
        reason = _INCOMPLETE.get(self._finish or "")
        if reason is None:
            self._end("completed", None)
        else:
            self._end("incomplete", {"type": "incomplete", "reason": reason})

    def cancel(self, reason: str = "client_cancelled") -> None:
        """Cut by ``response.cancel`` (or, ``reason`` ``turn_detected``, by the user's
        speech); its usage is the engine's, or, when the engine
        reported none, its output counted from the deltas sent (:func:`.wire.usage`)."""
        if self._usage is None:
            deltas = len(self._parts) + sum(map(len, self._arguments.values()))
            self._usage = _usage(0, deltas)
        self._end("cancelled", {"type": "cancelled", "reason": reason})

    def _end(self, status: str, details: dict[str, Any] | None) -> None:
        if self.done:
            return
        if not self.created:
            self.start()
        self.done = True
        self._close_items("completed" if status == "completed" else "incomplete")
        self._emit("response.done", {"response": self._object(status, details)})

    def _object(self, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        names = self._names
        shown = self._settings.shown(names)
        return {
            "id": self.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": self.output if status != "in_progress" else [],
            "conversation_id": self._conversation_id,
            names.modalities: shown[names.modalities],
            names.max_tokens: shown[names.max_tokens],
            "metadata": self._metadata,
            "usage": self._usage if status != "in_progress" else None,
        }
