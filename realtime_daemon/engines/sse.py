"""Server-Sent Events, as OpenAI-compatible servers stream chat completions.

Only what chat completions use: ``data:`` fields (several lines join with
``\\n``), events dispatched on a blank line, comments (``:`` lines, used as
keep-alives) and other fields ignored, LF, CRLF or CR line ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["sse_data"]


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each event in a byte stream, as it completes.

    Args:
        chunks: the response body in whatever pieces the network gives.
    """
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        lines = buffer.splitlines(keepends=True)
        # A last line with no line end yet, or a lone CR that may be the
        # first half of a CRLF, waits for the next chunk.
        buffer = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # ":" comments, and event:, id:, retry: fields, are not needed.
    if buffer.rstrip(b"\r\n").startswith(b"data:"):
        value = buffer.rstrip(b"\r\n")[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield b"\n".join(data)
