"""The sans-I/O half of the HTTP/1.1 client: an answer's head, then its body by framing.

Bytes in, parsed values out; no loop, no socket (as h11's ``_readers.py``).
:class:`HeadReader` reads heads, skipping interim (1xx) ones, up to the
final :class:`Head`, which names its body's framing; :data:`READERS` maps
each framing to its reader class: :class:`LengthReader` (Content-Length),
:class:`ChunkedReader` (chunked transfer coding) and
:class:`UntilCloseReader` (the connection's end). A reader's ``feed``
returns the body bytes of one read at once (de-chunked), so a connection
hands each read on in one call.

Every way an upstream breaks the framing is a :class:`ProtocolError`
whose message says how, in words that name no host.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Final, Literal, Protocol

__all__ = [
    "MAX_HEAD",
    "READERS",
    "BodyReader",
    "ChunkedReader",
    "Head",
    "HeadReader",
    "LengthReader",
    "ProtocolError",
    "UntilCloseReader",
    "parse_head",
]

MAX_HEAD = 64 * 1024
"""Bytes an answer's head (status line and headers) may have."""

_MAX_LINE = 4096  # a chunk-size or trailer line
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: (.*))?")


class ProtocolError(Exception):
    """The upstream broke HTTP/1.1 (the message says how)."""


class BodyReader(Protocol):
    """One answer's body under one framing, read by read.

    ``done`` is set once the body's end was read; ``overrun`` with it when
    the same read brought bytes past that end (not the next answer: the
    connection cannot be kept). Nothing is fed after ``done``.
    """

    done: bool
    overrun: bool

    def feed(self, data: bytes) -> bytes:
        """The body bytes in ``data`` (de-chunked; maybe none).

        Raises:
            ProtocolError: the framing is broken.
        """

    def eof(self) -> bool:
        """The connection closed: whether that is the body's end (else it was cut short)."""


class LengthReader:
    """A body of ``length`` bytes (Content-Length; 0 for 204 and 304 answers)."""

    __slots__ = ("_left", "done", "overrun")

    def __init__(self, length: int) -> None:
        self._left = length
        self.done = length == 0
        self.overrun = False

    def feed(self, data: bytes) -> bytes:
        left = self._left
        if len(data) < left:
            self._left = left - len(data)
            return data
        self._left = 0
        self.done = True
        if len(data) > left:
            self.overrun = True
            return data[:left]
        return data

    def eof(self) -> bool:
        return False


class UntilCloseReader:
    """A body that ends with the connection (no length, no chunks)."""

    __slots__ = ("done", "overrun")

    def __init__(self) -> None:
        self.done = False
        self.overrun = False

    def feed(self, data: bytes) -> bytes:
        return data

    def eof(self) -> bool:
        return True


_Part = Literal["size line", "data", "data end", "trailer"]
"""Where a chunked body's reader is (strings: their hash is cached, a lookup is cheap)."""

_SIZE_LINE: Final = "size line"  # a chunk-size line (and its extensions)
_DATA: Final = "data"  # a chunk's data
_DATA_END: Final = "data end"  # the CRLF after a chunk's data
_TRAILER: Final = "trailer"  # the trailer's lines, after the last (empty) chunk


class ChunkedReader:
    """A body in chunked transfer coding; chunk extensions and trailer fields are ignored."""

    __slots__ = ("_buffer", "_left", "_part", "done", "overrun")

    def __init__(self) -> None:
        self._part: _Part = _SIZE_LINE
        self._left = 0  # data bytes left in the chunk (in DATA)
        self._buffer = b""  # bytes of an unfinished line or chunk end, kept for the next read
        self.done = False
        self.overrun = False

    def feed(self, data: bytes) -> bytes:
        if self._part == _SIZE_LINE and not self._buffer:
            # What streaming servers send, read by read: one whole chunk.
            end = data.find(b"\r\n", 0, 18)
            if end > 0 and data.endswith(b"\r\n") and _CHUNK_SIZE.fullmatch(data, 0, end):
                size = int(data[:end], 16)
                if size and size == len(data) - end - 4:
                    return data[end + 2 : -2]
        return self._dechunk(data)

    def eof(self) -> bool:
        return False

    def _dechunk(self, data: bytes) -> bytes:
        """The chunk data in ``data`` and what was kept of the last read, part by part."""
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        pieces: list[bytes] = []
        at, size = 0, len(buffer)
        while at < size:
            step = _STEPS[self._part](self, buffer, at, pieces)
            if step is None:
                self._buffer = buffer[at:]
                break
            at = step
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    # Each step reads its part from buffer[at:]: the position after it (the
    # buffer's end once the body ended), or None when the part is not all
    # there yet.

    def _data(self, buffer: bytes, at: int, pieces: list[bytes]) -> int:
        take = min(self._left, len(buffer) - at)
        pieces.append(buffer[at : at + take])
        self._left -= take
        at += take
        if self._left:
            return at
        if buffer.startswith(b"\r\n", at):  # its end too: one step
            self._part = _SIZE_LINE
            return at + 2
        self._part = _DATA_END
        return at

    def _data_end(self, buffer: bytes, at: int, pieces: list[bytes]) -> int | None:
        if len(buffer) - at < 2:
            return None
        if buffer[at : at + 2] != b"\r\n":
            raise ProtocolError("sent a chunk longer than its size")
        self._part = _SIZE_LINE
        return at + 2

    def _size_line(self, buffer: bytes, at: int, pieces: list[bytes]) -> int | None:
        end = _line_end(buffer, at)
        if end is None:
            return None
        line = buffer[at:end]
        digits = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
        if _CHUNK_SIZE.fullmatch(digits) is None:
            raise ProtocolError(f"sent a malformed chunk size: {line[:40]!r}")
        size = int(digits, 16)
        at = end + 2
        if not size:
            self._part = _TRAILER
            return at
        stop = at + size
        if buffer.startswith(b"\r\n", stop):  # the whole chunk is here: one step
            pieces.append(buffer[at:stop])
            return stop + 2
        self._left = size
        self._part = _DATA
        return at

    def _trailer(self, buffer: bytes, at: int, pieces: list[bytes]) -> int | None:
        end = _line_end(buffer, at)
        if end is None:
            return None
        if end > at:
            return end + 2  # trailer fields are not needed
        self.done = True  # the empty line: the body's end
        self.overrun = end + 2 < len(buffer)
        return len(buffer)


_STEPS: dict[_Part, Callable[[ChunkedReader, bytes, int, list[bytes]], int | None]] = {
    _SIZE_LINE: ChunkedReader._size_line,
    _DATA: ChunkedReader._data,
    _DATA_END: ChunkedReader._data_end,
    _TRAILER: ChunkedReader._trailer,
}


def _line_end(buffer: bytes, at: int) -> int | None:
    """Where the line at ``at`` ends (its CRLF), or None if it has not yet.

    Raises:
        ProtocolError: it is past its limit already.
    """
    end = buffer.find(b"\r\n", at)
    if end >= 0:
        return end
    if len(buffer) - at > _MAX_LINE:
        raise ProtocolError("sent a chunk-size line that never ends")
    return None


READERS: dict[str, Callable[..., BodyReader]] = {
    "content-length": LengthReader,
    "chunked": ChunkedReader,
    "until-close": UntilCloseReader,
}
"""Body framing -> its reader's class (called with the framing's arguments)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Head:
    """A final answer's head: what the connection needs of it.

    ``framing`` is a key of :data:`READERS` and the reader's arguments.
    """

    status: int
    reason: str
    keep_alive: bool
    framing: tuple[str, tuple[int, ...]]
    media_type: str = ""
    """The Content-Type's media type, lower-cased, without parameters ("" if none)."""

    def body(self) -> BodyReader:
        """A new reader for this answer's body."""
        name, args = self.framing
        return READERS[name](*args)


class HeadReader:
    """Reads an answer's head, read by read, skipping interim (1xx) answers."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""  # an unfinished head

    @property
    def started(self) -> bool:
        """Bytes of a head were read, but not its end."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> tuple[Head, bytes] | None:
        """The final head and the bytes after it, once ``data`` completes it; else None.

        Raises:
            ProtocolError: a head is malformed or over :data:`MAX_HEAD` bytes.
        """
        while True:
            buffer = self._buffer + data if self._buffer else data
            end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                if len(buffer) >= MAX_HEAD + 4:
                    raise ProtocolError(f"sent a head over {MAX_HEAD} bytes")
                self._buffer = buffer
                return None
            self._buffer = b""
            data = buffer[end + 4 :]
            head = parse_head(buffer[:end])
            if head is not None:
                return head, data


def parse_head(head: bytes) -> Head | None:
    """An answer's head (without its blank line); None for an interim (1xx) one.

    Raises:
        ProtocolError: a malformed status line, header line or Content-Length,
            a compressed answer, a switch of protocols, or a transfer coding
            that does not end in chunked.
    """
    lines = head.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise ProtocolError(f"sent a malformed status line: {lines[0][:100]!r}")
    status = int(match[2])
    if status < 200:
        if status == 101:
            raise ProtocolError("switched protocols")
        return None
    headers = _headers(lines[1:])
    encoding = headers.get(b"content-encoding", b"identity").lower()
    if encoding != b"identity":
        raise ProtocolError(f"sent a {encoding.decode(errors='replace')}-encoded answer")
    framing = _framing(status, headers)
    keep_alive = (
        match[1] == b"1"
        and b"close" not in headers.get(b"connection", b"").lower()
        and framing[0] != "until-close"
    )
    media_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return Head(
        status,
        (match[3] or b"").decode("latin-1"),
        keep_alive,
        framing,
        media_type.decode("latin-1"),
    )


def _headers(lines: list[bytes]) -> dict[bytes, bytes]:
    """Header lines by lower-case name; repeated fields joined with commas."""
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"sent a malformed header line: {line[:100]!r}")
        name = name.lower()
        value = value.strip()
        headers[name] = headers[name] + b", " + value if name in headers else value
    return headers


def _framing(status: int, headers: dict[bytes, bytes]) -> tuple[str, tuple[int, ...]]:
    """How the body is delimited (RFC 9112 section 6.3), as a key of READERS and its arguments."""
    if status in (204, 304):
        return "content-length", (0,)
    transfer = headers.get(b"transfer-encoding")
    if transfer is not None:
        if transfer.lower().rsplit(b",", 1)[-1].strip() != b"chunked":
            raise ProtocolError("sent a body without a length")
        return "chunked", ()
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise ProtocolError(f"sent a malformed Content-Length: {length[:40]!r}")
        return "content-length", (int(length),)
    return "until-close", ()
