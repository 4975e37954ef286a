"""The SSE parser on its own: however the bytes are split, the same events come out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime_daemon.engines.openai.sse import DEFAULT_LIMIT, EventTooLarge, SSEParser


def _pieces(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    last = 0
    for cut in sorted(set(cuts)):
        yield data[last:cut]
        last = cut
    yield data[last:]


def parse(data: bytes, cuts: list[int], limit: int = DEFAULT_LIMIT) -> list[bytes]:
    """The events of ``data`` fed in pieces cut at ``cuts``, then the stream's end."""
    parser = SSEParser(limit)
    events = [event for piece in _pieces(data, cuts) for event in parser.feed(piece)]
    return events + parser.close()


def test_data_lines_comments_and_fields() -> None:
    """Several data lines join with a newline; comments and other fields are skipped."""
    stream = b': ping\n\nevent: x\nid: 1\ndata: {"a":\ndata:  1}\n\ndata:[DONE]\n\n'
    assert parse(stream, []) == [b'{"a":\n 1}', b"[DONE]"]


def test_crlf_and_lone_cr_line_ends() -> None:
    """CRLF and CR end lines as LF does."""
    assert parse(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n", []) == [b"a", b"b", b"c"]


def test_last_event_without_blank_line_is_kept() -> None:
    """A stream that ends right after a data line still yields it."""
    assert parse(b"data: x\n\ndata: [DONE]", []) == [b"x", b"[DONE]"]


events = st.lists(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
    max_size=8,
)


@given(
    events=events,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    crlf=st.booleans(),
)
def test_splitting_the_stream_anywhere_changes_nothing(
    events: list[bytes], cuts: list[int], crlf: bool
) -> None:
    """Whatever pieces the network cuts the stream into, the events are the same."""
    end = b"\r\n" if crlf else b"\n"
    stream = b"".join(b"data: " + e + end + end for e in events)
    assert parse(stream, [c % (len(stream) + 1) for c in cuts]) == events


def test_a_long_event_in_small_pieces_comes_out_whole() -> None:
    """A 200 kB event read 100 bytes at a time is one event, byte for byte."""
    value = bytes(range(32, 127)) * 2200
    stream = b"data: " + value + b"\n\n"
    assert parse(stream, list(range(100, len(stream), 100))) == [value]


@pytest.mark.parametrize(
    "stream",
    [
        b"data: " + b"x" * 2000,  # one line that never ends
        b"".join(b"data: " + b"y" * 100 + b"\n" for _ in range(20)) + b"\n",  # many lines
        b"data: " + b"z" * 2000 + b"\n\n",  # one whole event
    ],
)
def test_an_event_over_the_limit_raises(stream: bytes) -> None:
    """An event, or an unfinished line, over the limit raises EventTooLarge."""

    with pytest.raises(EventTooLarge):
        parse(stream, [100, 700], limit=1000)


@pytest.mark.parametrize("size", [998, 999, 1000])
def test_the_limit_is_the_same_for_an_event_read_whole_or_in_pieces(size: int) -> None:
    """An event read in one piece (the common case, taken by a shorter path) and the same
    event read in two meet the limit at the same size."""
    stream = b"data: " + b"v" * size + b"\n\n"
    outcomes = []
    for cuts in ([], [3]):
        try:
            outcomes.append(parse(stream, cuts, limit=1000))
        except EventTooLarge:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0] is None) == (size >= 1000)
