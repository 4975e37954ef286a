"""The dialects' hand-built frames are the encoder's bytes, numbered by the writer alone."""

from __future__ import annotations

import msgspec
import pytest

from realtime_daemon.dialects.chat import ChatDialect, envelope_frame
from realtime_daemon.dialects.realtime import GA
from realtime_daemon.dialects.realtime.response import Response, Writer
from realtime_daemon.dialects.realtime.wire import Settings
from realtime_daemon.wire.chat import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    Envelope,
    ErrorDetail,
    Usage,
)
from realtime_daemon.wire.chunks import read_envelope

from .frames import Frames

_encoder = msgspec.json.Encoder()
_CHUNK = ChatCompletionChunk(
    id="chatcmpl-1",
    created=1,
    model="m",
    choices=[ChunkChoice(delta=Delta(role="assistant", content='é "x"\n'))],
)
_ENVELOPES = [
    Envelope(data=_CHUNK),
    Envelope(data=msgspec.Raw(b'{"choices":[{"delta":{"content":"hi"}}]}')),
    Envelope(event="error", comment=["boom"]),
    Envelope(event="error", comment=["boom"], error=ErrorDetail(code="c", message="boom")),
    Envelope(event="cancelled", request_id="r1"),
    Envelope(event="session.updated", data=msgspec.Raw(b'{"model":null}')),
    Envelope(
        data=ChatCompletionChunk(
            id="c",
            created=2,
            model="m",
            choices=[ChunkChoice(delta=Delta(), finish_reason="stop")],
            usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        )
    ),
]


@pytest.mark.parametrize("envelope", _ENVELOPES)
def test_envelope_frame_is_the_encoders_bytes(envelope: Envelope) -> None:
    """head + id + tail is what the encoder writes for the envelope with that id."""
    head, tail = envelope_frame(envelope)
    expected = _encoder.encode(msgspec.structs.replace(envelope, id="42"))
    assert head + b"42" + tail == expected


@pytest.mark.parametrize("request_id", [None, "r1", 'quote"d'])
@pytest.mark.parametrize("envelope", _ENVELOPES[:2] + _ENVELOPES[-1:])
def test_chat_answer_chunks_are_the_encoders_bytes(
    envelope: Envelope, request_id: str | None
) -> None:
    """The chat dialect's per-chunk fast path writes the encoder's bytes, with the
    answer's request id, numbered by the writer; no loop and no socket needed."""
    frames = Frames()
    dialect = ChatDialect(frames, "s")
    dialect.started(request_id).envelope(envelope)
    dialect.started(request_id).envelope(envelope)
    for n, payload in enumerate(frames.payloads, 1):
        expected = msgspec.structs.replace(envelope, id=str(n), request_id=request_id)
        assert payload == _encoder.encode(expected)


@pytest.mark.parametrize(
    "fields", [{}, {"item": {"id": "i", "content": ["é"]}}, {"response_id": "r", "n": 1}]
)
def test_realtime_events_are_the_encoders_bytes(fields: dict[str, object]) -> None:
    """A Realtime server event is the encoder's bytes of its object, ``event_id`` second."""
    frames = Frames()
    Writer(frames).event("response.done", fields)
    expected = {"type": "response.done", "event_id": "event_1", **fields}
    assert frames.payloads == [_encoder.encode(expected)]


def test_a_response_reads_typed_and_relayed_chunks_alike() -> None:
    """The same answer, typed or as relayed bytes, gives the same events (the reader
    reads chunks once, the response never looks inside one)."""
    relayed = Frames()
    typed = Frames()
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    for frames, envelope in (
        (relayed, Envelope(data=msgspec.Raw(msgspec.json.encode(chunk)))),
        (
            typed,
            Envelope(
                data=ChatCompletionChunk(
                    id="c",
                    created=0,
                    model="m",
                    choices=[ChunkChoice(delta=Delta(content="hi"), finish_reason="stop")],
                )
            ),
        ),
    ):
        response = Response("resp_1", GA, Writer(frames), Settings(), None, "c", None)
        response.start()
        read_envelope(envelope, response)
        response.complete()
    assert relayed.payloads == typed.payloads
    assert relayed.events[-1]["response"]["output"][0]["content"][0]["text"] == "hi"
