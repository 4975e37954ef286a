"""The fields of the Realtime client events the dialect reads, and what ``null`` means in each.

One table per shape (GA, beta), built by :func:`fields`: for each client
event, its own fields and those of the objects it carries (``session``,
``response``, ``item``). OpenAI reads an explicit ``null`` in an optional
field as "not given", except where the API gives ``null`` a meaning of its
own (``turn_detection``, ``transcription``, ``noise_reduction``, ``tracing``:
turned off). :func:`given` applies the table before a field is checked, so
that no check sees a null it should read as absent.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

__all__ = ["Fields", "Null", "fields", "given"]


class Null(enum.Enum):
    """What an explicit ``null`` means for a field of a client event."""

    REFUSED = "refused"
    """A required field: null is not a value."""
    UNSET = "unset"
    """Not given: a response takes the session's value, a session update leaves it."""
    OFF = "off"
    """The API's own meaning, the feature turned off (turn detection, transcription,
    noise reduction, tracing): kept, for the setting's check to read as off."""


Fields = Mapping[tuple[str, str], Mapping[str, Null]]
"""(client event type, object: ``""`` for the event itself) -> its fields and their null."""

_REFUSED, _UNSET, _OFF = Null.REFUSED, Null.UNSET, Null.OFF

# Fields of a session or a response a text server accepts and does not use (audio
# settings, tracing, ...): kept quiet, as OpenAI keeps fields it does not need for text.
_UNUSED = {
    **dict.fromkeys(("audio", "include", "prompt", "reasoning", "truncation"), _UNSET),
    **dict.fromkeys(("voice", "speed", "input_audio_format", "output_audio_format"), _UNSET),
    **dict.fromkeys(("client_secret", "id", "object", "expires_at"), _UNSET),
    **dict.fromkeys(
        ("tracing", "turn_detection", "input_audio_transcription", "input_audio_noise_reduction"),
        _OFF,
    ),
}


def fields(*, beta: bool, modalities: str, max_tokens: str) -> Fields:
    """Every field of every client event the dialect reads, for one shape.

    A field a session or a response does not list here is unknown
    (``unknown_parameter``); items and events keep fields they do not know.

    Args:
        beta: the beta shape (``temperature``; no ``session.type``).
        modalities: the shape's name for the output modalities.
        max_tokens: the shape's name for the output token cap.
    """
    settings = {
        **dict.fromkeys(("instructions", "tools", "tool_choice", "parallel_tool_calls"), _UNSET),
        **dict.fromkeys((modalities, max_tokens, *(("temperature",) if beta else ())), _UNSET),
        **_UNUSED,
    }
    return {
        ("session.update", ""): {"event_id": _UNSET, "session": _REFUSED},
        ("session.update", "session"): {
            **settings,
            "type": _UNSET if beta else _REFUSED,  # GA requires it; beta has none
            "model": _UNSET,
            "resumable": _UNSET,
        },
        ("conversation.item.create", ""): {
            "event_id": _UNSET,
            "item": _REFUSED,
            "previous_item_id": _UNSET,
        },
        ("conversation.item.create", "item"): dict.fromkeys(("id", "object", "status"), _UNSET),
        ("conversation.item.delete", ""): {"event_id": _UNSET, "item_id": _REFUSED},
        ("conversation.item.retrieve", ""): {"event_id": _UNSET, "item_id": _REFUSED},
        ("response.create", ""): {"event_id": _UNSET, "response": _UNSET},
        ("response.create", "response"): {
            **settings,
            **dict.fromkeys(("conversation", "input", "metadata"), _UNSET),
        },
        ("response.cancel", ""): {"event_id": _UNSET, "response_id": _UNSET},
        ("input_audio_buffer.clear", ""): {"event_id": _UNSET},
    }


def given(value: dict[str, Any], known: Mapping[str, Null]) -> dict[str, Any]:
    """``value`` without the fields whose explicit null reads as absent (``UNSET``); a
    null of an ``OFF`` field stays (its check reads it as off), and so does a null of a
    field ``known`` does not list, or of a ``REFUSED`` one, for its check to refuse."""
    return {
        name: field
        for name, field in value.items()
        if field is not None or known.get(name, _REFUSED) is not _UNSET
    }
