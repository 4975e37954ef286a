"""One Responses response: what an answer says (neutral events) becomes its stream events.

The events are those of the HTTP API's SSE stream, each numbered by the
connection's writer (``sequence_number``, increasing within a response as
across the connection). A response opens output items as the chunks need
them (an assistant ``message`` for text, a ``function_call`` per streamed
tool call), streams their deltas, and closes them all, in order, when it
ends: ``response.completed``, ``response.incomplete`` (the token limit or a
content filter cut it) or ``response.failed``, always its last event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from realtime_daemon.dialects import FrameWriter
from realtime_daemon.dialects.responses.request import Create
from realtime_daemon.wire.chat import ErrorDetail, Usage
from realtime_daemon.wire.chunks import ToolCallDelta

__all__ = ["Response", "Writer", "usage"]

_encoder = msgspec.json.Encoder()
_SEQUENCE = b',"sequence_number":'
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class Writer:
    """Writes server events ``{"type": ..., ..., "sequence_number": <n>}``, ``n`` the
    frame's number, given by the :class:`~realtime_daemon.dialects.FrameWriter`."""

    __slots__ = ("_out",)

    def __init__(self, out: FrameWriter) -> None:
        self._out = out

    def event(self, kind: str, fields: dict[str, Any]) -> None:
        """Send ``{"type": kind, **fields, "sequence_number": n}``."""
        self._out.write(_encoder.encode({"type": kind, **fields})[:-1] + _SEQUENCE, b"}")

    def delta(self, head: bytes, text: str, tail: bytes) -> None:
        """Send a delta: ``head`` (its event's fields but the delta, made once per item),
        the text, ``tail``. The per-token path: no dict."""
        self._out.write(head + _encoder.encode(text) + tail, b"}")


def usage(prompt: int = 0, completion: int = 0, total: int = 0) -> dict[str, Any]:
    """A response's ``usage`` object."""
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total or prompt + completion,
    }


class Response:
    """One response's output items and events.

    Args:
        response_id: its id (``resp_...``).
        create: what it was asked with.
        writer: sends its events.
        created_at: its Unix time.
        ended: told once when it ends, whichever way (the dialect keeps its chain).
    """

    def __init__(
        self,
        response_id: str,
        create: Create,
        writer: Writer,
        created_at: int,
        ended: Callable[[Response], None],
    ) -> None:
        self.id = response_id
        self.create = create
        self._writer = writer
        self._created_at = created_at
        self._ended = ended
        self._lane = {} if create.stream_id is None else {"stream_id": create.stream_id}
        self.output: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}  # output_index by item id
        self._text: dict[str, Any] | None = None  # the open assistant message
        self._delta_head = b""
        self._delta_tail = b""
        self._parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}  # open function calls by tool index
        self._arguments: dict[str, list[str]] = {}  # their argument pieces, by item id
        self._finish: str | None = None
        self._usage = usage()
        self.status = "queued"
        self.created = False
        self.done = False

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        self._writer.event(kind, {**fields, **self._lane})

    def start(self) -> None:
        """Send ``response.created`` and ``response.in_progress``."""
        self.created = True
        self.status = "in_progress"
        self._emit("response.created", {"response": self.object()})
        self._emit("response.in_progress", {"response": self.object()})

    # -- the answer's events (wire.chunks.AnswerEvents) ----------------------------------

    def text(self, text: str) -> None:
        """The answer's text goes on."""
        if self.done:
            return
        if self._text is None:
            self._open_message()
        self._parts.append(text)
        self._writer.delta(self._delta_head, text, self._delta_tail)

    def tool_call(self, call: ToolCallDelta) -> None:
        """A function call starts or goes on."""
        if self.done:
            return
        item = self._calls.get(call.index)
        if item is None:
            fields = {
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.id or f"call_{self.id[5:]}_{len(self.output)}",
                "name": call.name or "",
                "arguments": "",
            }
            item = self._calls[call.index] = self._open("fc", fields)
            self._arguments[item["id"]] = []
        elif call.name and not item["name"]:
            item["name"] = call.name
        if call.arguments:
            self._arguments[item["id"]].append(call.arguments)
            self._emit(
                "response.function_call_arguments.delta",
                {**self._where(item), "delta": call.arguments},
            )

    def finish(self, reason: str) -> None:
        """The engine's finish reason, for the status at the end."""
        self._finish = reason

    def usage(self, counts: Usage) -> None:
        """The engine's token counts, shown in the response's last event."""
        self._usage = usage(counts.prompt_tokens, counts.completion_tokens, counts.total_tokens)

    def fail(self, detail: ErrorDetail) -> None:
        """The engine or its upstream failed the response: ``response.failed``."""
        code = "server_error" if detail.code != "rate_limit_exceeded" else detail.code
        self._end("failed", {"error": {"code": code, "message": detail.message}})

    # -- items -----------------------------------------------------------------

    def _open_message(self) -> None:
        fields = {"type": "message", "status": "in_progress", "role": "assistant", "content": []}
        item = self._text = self._open("msg", fields)
        where = self._where(item)
        self._emit(
            "response.content_part.added",
            {**where, "content_index": 0, "part": _text_part("")},
        )
        head = {"type": "response.output_text.delta", **where, "content_index": 0}
        self._delta_head = _encoder.encode(head)[:-1] + b',"delta":'
        lane = b"".join(b',"stream_id":' + _encoder.encode(v) for v in self._lane.values())
        self._delta_tail = b',"logprobs":[]' + lane + _SEQUENCE

    def _open(self, prefix: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Add an output item (``in_progress``) and announce it."""
        item = {"id": f"{prefix}_{self.id[5:]}_{len(self.output)}", **fields}
        self._index[item["id"]] = len(self.output)
        self.output.append(item)
        self._emit(
            "response.output_item.added",
            {"output_index": len(self.output) - 1, "item": item},
        )
        return item

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": item["id"], "output_index": self._index[item["id"]]}

    def _close_items(self, status: str) -> None:
        """Close every open item, in output order, with ``status``."""
        for item in self.output:
            if item["status"] != "in_progress":
                continue
            where = self._where(item)
            if item["type"] == "message":
                text = "".join(self._parts)
                self._emit(
                    "response.output_text.done",
                    {**where, "content_index": 0, "text": text, "logprobs": []},
                )
                self._emit(
                    "response.content_part.done",
                    {**where, "content_index": 0, "part": _text_part(text)},
                )
                item["content"] = [_text_part(text)]
            else:
                item["arguments"] = "".join(self._arguments[item["id"]])
                self._emit(
                    "response.function_call_arguments.done",
                    {**where, "name": item["name"], "arguments": item["arguments"]},
                )
            item["status"] = status
            self._emit("response.output_item.done", {**where, "item": item})

    # -- the end ---------------------------------------------------------------

    def complete(self) -> None:
        """The engine's answer ended: ``completed``, or ``incomplete`` when the token limit
        or a content filter cut it."""
        reason = _INCOMPLETE.get(self._finish or "")
        if reason is None:
            self._end("completed", {})
        else:
            self._end("incomplete", {"incomplete_details": {"reason": reason}})

    def _end(self, status: str, details: dict[str, Any]) -> None:
        if self.done:
            return
        if not self.created:
            self.start()
        self.done = True
        self._close_items("completed" if status == "completed" else "incomplete")
        self.status = status
        self._emit(f"response.{status}", {"response": self.object(details)})
        self._ended(self)

    def object(self, details: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Response object as it is now."""
        create = self.create
        over = self.done
        return {
            "id": self.id,
            "object": "response",
            "created_at": self._created_at,
            "status": self.status,
            "error": None,
            "incomplete_details": None,
            **(details or {}),
            "model": create.model,
            "output": self.output if over else [],
            "previous_response_id": create.previous_response_id,
            "store": create.store,
            "background": False,
            **create.echoed,
            "usage": self._usage if over else None,
        }

    def output_items(self) -> list[dict[str, Any]]:
        """Its output as input items, for the chain that continues from it."""
        items = []
        for item in self.output:
            if item["type"] == "message":
                items.append(
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [
                            {"type": "output_text", "text": part["text"]}
                            for part in item["content"]
                        ],
                    }
                )
            else:
                items.append({k: item[k] for k in ("type", "call_id", "name", "arguments")})
        return items


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
