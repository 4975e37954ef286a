"""The HTTP/1.1 client's sans-I/O parser on its own: heads and bodies from bytes, no loop.

Each answer is fed as a connection would feed it: to a ``HeadReader`` until
the final head, then to the reader its framing picks, whole, byte by byte,
in 7-byte pieces, or cut anywhere; the body, its end and the errors are the
same every way. ``test_h1.py`` pins the same answers through a real socket.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime_daemon.engines.openai.h1.parse import (
    READERS,
    BodyReader,
    ChunkedReader,
    Head,
    HeadReader,
    LengthReader,
    ProtocolError,
    UntilCloseReader,
    parse_head,
)

EVENTS = [b"data: {%d}\n\n" % n for n in range(5)] + [b"data: [DONE]\n\n"]
SSE = b"".join(EVENTS)
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
CHUNKED_HEAD = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def split(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (0: whole)."""
    step = size or len(data)
    return (data[at : at + step] for at in range(0, len(data), step))


def cut(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """``data`` cut at each of ``cuts``."""
    last = 0
    for at in sorted(set(cuts)):
        yield data[last:at]
        last = at
    yield data[last:]


def read(pieces: Iterator[bytes]) -> tuple[Head, bytes, BodyReader]:
    """The final head, the body and its reader, as a connection reads them (no
    empty reads; nothing fed past the body's end)."""
    heads = HeadReader()
    for piece in pieces:
        got = heads.feed(piece)
        if got is not None:
            break
    else:
        raise AssertionError("no whole head")
    head, rest = got
    reader = head.body()
    body = []
    for piece in itertools.chain([rest], pieces):
        if reader.done:
            break
        if piece:
            body.append(reader.feed(piece))
    return head, b"".join(body), reader


FRAMINGS = {
    "chunked, an event a chunk": (CHUNKED_HEAD + chunked(*EVENTS), "chunked", True),
    "chunked, extensions and trailers": (
        CHUNKED_HEAD
        + b"".join(b"%X;name=value\r\n%b\r\n" % (len(e), e) for e in EVENTS)
        + b"0\r\nX-Trailer: yes\r\n\r\n",
        "chunked",
        True,
    ),
    "Content-Length": (
        SSE_HEAD + b"Content-Length: %d\r\n\r\n%b" % (len(SSE), SSE),
        "content-length",
        True,
    ),
    "interim 100 and 103 first": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        + CHUNKED_HEAD
        + chunked(SSE),
        "chunked",
        True,
    ),
    "Connection: close": (
        SSE_HEAD + b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(SSE), SSE),
        "content-length",
        False,
    ),
    "HTTP/1.0, until the connection closes": (
        b"HTTP/1.0 200 OK\r\n\r\n" + SSE,
        "until-close",
        False,
    ),
}


@pytest.mark.parametrize("size", [0, 1, 7])
@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_every_framing_reads_the_same_body_however_split(framing: str, size: int) -> None:
    """Each framing's reader, fed whole, byte by byte or in 7-byte pieces: the same
    head and body, and the body's end found where it is."""
    data, name, keep_alive = FRAMINGS[framing]
    head, body, reader = read(split(data, size))
    assert (head.status, head.reason, head.keep_alive) == (200, "OK", keep_alive)
    assert type(reader) is READERS[name]
    assert body == SSE
    assert not reader.overrun
    if name == "until-close":
        assert not reader.done and reader.eof()
    else:
        assert reader.done


@given(cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=30))
def test_a_chunked_answer_cut_anywhere_reads_the_same(cuts: list[int]) -> None:
    """However the network cuts a chunked answer, its body and end are the same."""
    data = FRAMINGS["chunked, extensions and trailers"][0]
    _, body, reader = read(cut(data, cuts))
    assert body == SSE
    assert reader.done and not reader.overrun


def test_a_whole_chunk_per_read_comes_out_as_that_chunk() -> None:
    """A read that brings one whole chunk gives that chunk's data, one piece per read."""
    reader = ChunkedReader()
    assert [reader.feed(b"%x\r\n%b\r\n" % (len(e), e)) for e in EVENTS] == EVENTS
    assert not reader.done
    assert reader.feed(b"0\r\n\r\n") == b""
    assert reader.done and not reader.overrun


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_no_body_answers_end_with_their_head(status: bytes) -> None:
    """204 and 304 answers have no body, whatever their Content-Length says."""
    data = b"HTTP/1.1 %b\r\nContent-Length: 9\r\n\r\n" % status
    head, body, reader = read(split(data, 0))
    assert (head.status, body, reader.done) == (int(status[:3]), b"", True)


@pytest.mark.parametrize(
    "reader, data",
    [
        (LengthReader(len(SSE)), SSE),
        (ChunkedReader(), chunked(*EVENTS)),
    ],
    ids=["Content-Length", "chunked"],
)
def test_bytes_past_the_end_in_the_same_read_are_an_overrun(
    reader: BodyReader, data: bytes
) -> None:
    """A read that goes past the body's end gives the body only, and says it overran."""
    assert reader.feed(data + b"HTTP/1.1 200 OK\r\n") == SSE
    assert reader.done and reader.overrun


def test_only_an_until_close_body_ends_with_the_connection() -> None:
    """The connection's close ends an until-close body, and cuts the others short."""
    length, chunks, until_close = LengthReader(10), ChunkedReader(), UntilCloseReader()
    length.feed(b"abc")
    chunks.feed(b"5\r\nab")
    until_close.feed(b"abc")
    assert (length.eof(), chunks.eof(), until_close.eof()) == (False, False, True)


def test_a_head_read_in_part_is_started() -> None:
    """Bytes of a head without its end are held (a close then is mid-answer)."""
    heads = HeadReader()
    assert not heads.started
    assert heads.feed(b"HTTP/1.1 100") is None
    assert heads.started
    assert heads.feed(b" Continue\r\n\r\n") is None
    assert not heads.started  # an interim answer, read whole: nothing held


BROKEN = {
    "status line": (b"HTTP/2 200 OK\r\n\r\n", "sent a malformed status line: b'HTTP/2 200 OK'"),
    "header line": (
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        "sent a malformed header line: b'No colon here'",
    ),
    "chunk size": (CHUNKED_HEAD + b"zz\r\n", "sent a malformed chunk size: b'zz'"),
    "chunk too long": (CHUNKED_HEAD + b"2\r\nabc\r\n", "sent a chunk longer than its size"),
    "chunk-size line too long": (
        CHUNKED_HEAD + b"1" * 5000,
        "sent a chunk-size line that never ends",
    ),
    "compressed": (
        SSE_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
        "sent a gzip-encoded answer",
    ),
    "not chunked last": (
        SSE_HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        "sent a body without a length",
    ),
    "Content-Length": (
        SSE_HEAD + b"Content-Length: 1x\r\n\r\n",
        "sent a malformed Content-Length: b'1x'",
    ),
    "head too large": (
        SSE_HEAD + b"X-Big: " + b"x" * 70_000 + b"\r\n\r\n",
        "sent a head over 65536 bytes",
    ),
    "switching protocols": (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
}


@pytest.mark.parametrize("size", [0, 1, 7])
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_framing_is_a_protocol_error_however_split(case: str, size: int) -> None:
    """Whatever breaks HTTP/1.1 raises ProtocolError saying what, however it is split."""
    data, message = BROKEN[case]
    with pytest.raises(ProtocolError) as raised:
        read(split(data, size))
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("header", "media_type"),
    [
        (b"Content-Type: text/event-stream\r\n", "text/event-stream"),
        (b"content-type: Application/JSON; charset=utf-8\r\n", "application/json"),
        (b"", ""),
    ],
)
def test_the_head_names_its_media_type(header: bytes, media_type: str) -> None:
    """A head's media type is its Content-Type's, lower-cased, without parameters."""
    head = parse_head(b"HTTP/1.1 200 OK\r\n" + header + b"Content-Length: 0")
    assert head is not None and head.media_type == media_type
