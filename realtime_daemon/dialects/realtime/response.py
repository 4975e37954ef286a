"""One Realtime response: an engine's chat-completion chunks become its events.

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
from realtime_daemon.dialects.realtime.wire import Names, Settings, usage
from realtime_daemon.wire.chat import ChatCompletionChunk, Envelope

__all__ = ["Response", "Writer"]


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class _Chunk(msgspec.Struct):
    """What a response reads of a chunk an engine passed through as bytes."""

    choices: list[_Choice] = []
    usage: _Usage | None = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)
_encoder = msgspec.json.Encoder()


class Writer:
    """Gives server events their ``event_id`` (``event_<n>``, n the outbox's envelope
    number) and writes them.

    Each method returns whether the writer must ``await outbox.settle()``.
    """

    __slots__ = ("_outbox",)

    def __init__(self, outbox: FrameWriter) -> None:
        self._outbox = outbox

    def event(self, kind: str, fields: dict[str, Any]) -> bool:
        """Send ``{"type": kind, "event_id": ..., **fields}``."""
        outbox = self._outbox
        event_id = "event_" + outbox.next_id()
        return outbox.write(_encoder.encode({"type": kind, "event_id": event_id, **fields}))

    def delta(self, head: bytes, text: str) -> bool:
        """Send a text delta: ``head`` (the event's fields up to its ``event_id``,
        made once per item by :func:`delta_head`), then the id and the text.
        The per-token path: no dict, no Struct."""
        outbox = self._outbox
        return outbox.write(
            b"".join((head, outbox.next_id().encode(), b'","delta":', _encoder.encode(text), b"}"))
        )


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

    def start(self) -> bool:
        """Send ``response.created``."""
        self.created = True
        return self._emit("response.created", {"response": self._object("in_progress")})

    # -- the engine's chunks --------------------------------------------------

    def feed(self, envelope: Envelope) -> bool:
        """One envelope of the engine's answer; whether to settle."""
        if self.done:
            return False
        data = envelope.data
        if envelope.event == "error":
            message = (envelope.comment or ["request failed"])[0]
            return self.fail("request_failed", message)
        if data.__class__ is ChatCompletionChunk:
            assert isinstance(data, ChatCompletionChunk)
            choices = data.choices
            if len(choices) == 1 and data.usage is None:
                # The per-token path: one choice, text (Delta has no tool calls).
                choice = choices[0]
                content = choice.delta.content
                settle = self._text_delta(content) if content and choice.index == 0 else False
                if choice.finish_reason is not None:
                    self._finish = choice.finish_reason
                return settle
            return self._chunk(choices, data.usage)
        if isinstance(data, msgspec.Raw):
            try:
                chunk = _chunk_decoder.decode(data)
            except msgspec.DecodeError:
                return False  # nothing a response can show (the engine checked it is JSON)
            return self._chunk(chunk.choices, chunk.usage)
        return False

    def _chunk(self, choices: list[Any], usage: Any) -> bool:
        settle = False
        for choice in choices:
            if choice.index != 0:
                continue  # one output per response: n > 1 has no Realtime shape
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    settle |= self._text_delta(delta.content)
                for call in getattr(delta, "tool_calls", None) or ():
                    settle |= self._call_delta(call)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
        if usage is not None:
            p, c = usage.prompt_tokens, usage.completion_tokens
            self._usage = {
                "total_tokens": usage.total_tokens or p + c,
                "input_tokens": p,
                "output_tokens": c,
                "input_token_details": {
                    "text_tokens": p,
                    "audio_tokens": 0,
                    "image_tokens": 0,
                    "cached_tokens": 0,
                },
                "output_token_details": {"text_tokens": c, "audio_tokens": 0},
            }
        return settle

    def _text_delta(self, text: str) -> bool:
        settle = False
        item = self._text
        if item is None:
            item = self._text = self._open({"type": "message", "role": "assistant", "content": []})
            index = len(self.output) - 1
            self._delta_head = delta_head(self._names.text_delta, self.id, item["id"], index)
            settle = self._emit(
                "response.content_part.added",
                {**self._where(item), "content_index": 0, "part": {"type": "text", "text": ""}},
            )
        self._parts.append(text)
        return self._writer.delta(self._delta_head, text) or settle

    def _call_delta(self, call: _ToolCall) -> bool:
        settle = False
        item = self._calls.get(call.index)
        function = call.function or _Function()
        if item is None:
            call_id = call.id or self._new_id("call")
            item = self._calls[call.index] = self._open(
                {
                    "type": "function_call",
                    "name": function.name or "",
                    "call_id": call_id,
                    "arguments": "",
                }
            )
            self._arguments[item["id"]] = []
            settle = True
        elif function.name and not item["name"]:
            item["name"] = function.name
        if function.arguments:
            self._arguments[item["id"]].append(function.arguments)
            settle |= self._emit(
                "response.function_call_arguments.delta",
                {**self._where(item), "call_id": item["call_id"], "delta": function.arguments},
            )
        return settle

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
                text = "".join(self._parts)
                self._emit(self._names.text_done, {**where, "content_index": 0, "text": text})
                self._emit(
                    "response.content_part.done",
                    {**where, "content_index": 0, "part": {"type": "text", "text": text}},
                )
                item["content"] = [{"type": self._names.text_part, "text": text}]
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

    # -- the end ---------------------------------------------------------------

    def complete(self) -> bool:
        """The engine's answer ended: ``completed``, or ``incomplete`` when it was cut
        by the token limit or a content filter."""
        reason = _INCOMPLETE.get(self._finish or "")
        if reason is None:
            return self._end("completed", None)
        return self._end("incomplete", {"type": "incomplete", "reason": reason})

    def cancel(self) -> bool:
        """Cut by ``response.cancel``; its usage is the engine's, or, when the engine
        reported none, its output counted from the deltas sent (:func:`.wire.usage`)."""
        if self._usage is None:
            deltas = len(self._parts) + sum(map(len, self._arguments.values()))
            self._usage = usage(0, deltas)
        return self._end("cancelled", {"type": "cancelled", "reason": "client_cancelled"})

    def fail(self, code: str, message: str, kind: str = "server_error") -> bool:
        """The engine or its upstream failed the response."""
        error = {"type": kind, "code": code, "message": message}
        return self._end("failed", {"type": "failed", "error": error})

    def _end(self, status: str, details: dict[str, Any] | None) -> bool:
        if self.done:
            return False
        if not self.created:
            self.start()
        self.done = True
        self._close_items("completed" if status == "completed" else "incomplete")
        return self._emit("response.done", {"response": self._object(status, details)})

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
            names.modalities: ["text"],
            names.max_tokens: shown[names.max_tokens],
            "metadata": self._metadata,
            "usage": self._usage if status != "in_progress" else None,
        }
