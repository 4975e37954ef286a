"""An answer's text cut into speakable pieces as it streams, and cut back to what was heard.

No I/O. :class:`Pieces` takes the text as the engine sends it and gives each
piece as soon as it is complete: at a sentence's end (``.``, ``!``, ``?``,
``…`` and their CJK forms, then a space; or a line break), at a clause's end
(``,``, ``;``, ``:``) once the piece is long enough to be worth a synthesis
of its own, or at the last space before :data:`MAX_CHARS`. What is left at
the end, or when the text pauses (the speaker's bounded wait), is
:meth:`Pieces.flush`. :func:`heard` maps a played duration back to the words
spoken by then.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_CHARS", "SOFT_CHARS", "Pieces", "heard"]

MAX_CHARS = 250
"""The longest piece: cut at the last space before it when no sentence ends."""
SOFT_CHARS = 80
"""A piece this long may end at a clause (a comma) rather than wait for a sentence's end."""

_SENTENCE_ENDS = frozenset(".!?\u2026\u3002\uff01\uff1f")  # and the CJK full stops
_CLAUSE_ENDS = frozenset(",;:\u3001\uff0c\uff1b\uff1a")


class Pieces:
    """The pieces of one answer's text."""

    __slots__ = ("_text",)

    def __init__(self) -> None:
        self._text = ""

    @property
    def pending(self) -> str:
        """The text given and not yet in a piece."""
        return self._text

    def feed(self, text: str) -> list[str]:
        """Add ``text``; the pieces it completes, in order."""
        self._text += text
        pieces = []
        while (cut := self._cut()) is not None:
            piece, self._text = self._text[:cut], self._text[cut:]
            if piece.strip():
                pieces.append(piece)
            else:
                self._text = piece + self._text  # only spaces: wait for words
                break
        return pieces

    def flush(self) -> str | None:
        """The rest of the text as a piece (None when there is none to speak)."""
        rest, self._text = self._text, ""
        return rest if rest.strip() else None

    def _cut(self) -> int | None:
        """Where the first complete piece ends (after its trailing space), if one is."""
        text = self._text
        soft = None
        for i in range(len(text) - 1):
            char, after = text[i], text[i + 1]
            if char == "\n":
                return i + 1
            if after.isspace() and char in _SENTENCE_ENDS:
                return i + 2
            if after.isspace() and char in _CLAUSE_ENDS and i >= SOFT_CHARS and soft is None:
                soft = i + 2
        if soft is not None:
            return soft
        if len(text) >= MAX_CHARS:
            space = text.rfind(" ", 0, MAX_CHARS)
            return space + 1 if space > 0 else MAX_CHARS
        return None


def heard(pieces: Sequence[tuple[str, int]], end_ms: int) -> str:
    """The words of ``pieces`` (each its text and its audio's milliseconds, in order)
    spoken in the first ``end_ms``: whole pieces, then the part of the next one its
    share of the time covers, cut back to a word's end."""
    said, start = [], 0
    for text, ms in pieces:
        if start + ms <= end_ms:
            said.append(text)
            start += ms
            continue
        share = len(text) * max(0, end_ms - start) // max(ms, 1)
        part = text[:share]
        if share < len(text) and not text[share : share + 1].isspace():
            part = part[: part.rfind(" ") + 1] if " " in part else ""
        said.append(part)
        break
    return "".join(said).rstrip()
