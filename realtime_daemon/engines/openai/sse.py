"""Server-Sent Events, as OpenAI-compatible servers stream chat completions.

Only what chat completions use: ``data:`` fields (several lines join with
``\\n``), events dispatched on a blank line, comments (``:`` lines, used as
keep-alives) and other fields ignored, LF, CRLF or CR line ends.

The work is linear in the bytes received, however the network splits them:
each byte is scanned for a line end once, and an unfinished line is kept,
not re-split, until its end arrives. An event (or an unfinished line) over
``limit`` bytes raises :class:`EventTooLarge`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_LIMIT", "EventTooLarge", "SSEParser"]

DEFAULT_LIMIT = 4 * 1024 * 1024
"""Bytes an event may have: far above any chat chunk, far below memory trouble."""


class EventTooLarge(Exception):
    """An event, or a line, is larger than the parser's limit."""


class SSEParser:
    """A sans-I/O SSE parser: :meth:`feed` bytes, get the ``data`` of completed events.

    Args:
        limit: the most bytes an event (or one line) may have.
    """

    __slots__ = ("_data", "_limit", "_pending", "_pieces", "_size")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._pieces: list[bytes] = []  # an unfinished line, as it arrived
        self._pending = 0  # its length
        self._data: list[bytes] = []  # the data lines of the event being read
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """The ``data`` of every event ``chunk`` completes, in order.

        Raises:
            EventTooLarge: the event or line being read is over the limit.
        """
        if not chunk:
            return []
        pieces = self._pieces
        if (
            not pieces
            and chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n")
            and b"\r" not in chunk
            and not self._data
        ):
            # What servers send, read by read: one whole event of one "data: " line.
            if len(chunk) - 7 > self._limit:
                raise EventTooLarge(f"an event over {self._limit} bytes")
            return [chunk[6:-2]]
        # Only the new bytes are searched: the unfinished line has no line
        # end, except perhaps a last CR, held back as it may begin a CRLF.
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r", 0, len(chunk) - 1))
        if end >= 0:
            end += self._pending
        elif pieces and pieces[-1].endswith(b"\r"):
            end = self._pending - 1  # that CR ended a line after all
        else:
            pieces.append(chunk)
            self._pending += len(chunk)
            if self._pending > self._limit:
                raise EventTooLarge(f"a line over {self._limit} bytes")
            return []
        data = b"".join((*pieces, chunk)) if pieces else chunk
        rest = data[end + 1 :]
        pieces.clear()
        if rest:
            pieces.append(rest)
        self._pending = len(rest)
        return self._lines(data[: end + 1].splitlines())

    def close(self) -> list[bytes]:
        """The end of the stream: the last event, if it was not ended by a blank line."""
        rest = b"".join(self._pieces).splitlines()
        self._pieces.clear()
        self._pending = 0
        return self._lines([*rest, b""])

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        events: list[bytes] = []
        data, size, limit = self._data, self._size, self._limit
        for line in lines:
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data = []
                    size = 0
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                size += len(value) + 1
                if size > limit:
                    raise EventTooLarge(f"an event over {limit} bytes")
                data.append(value)
            # ":" comments, and event:, id:, retry: fields, are not needed.
        self._data, self._size = data, size
        return events
