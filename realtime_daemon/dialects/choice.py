"""Which dialect a connection speaks, from its upgrade request and ``--protocol``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = ["Protocol", "choose_protocol"]

Protocol = Literal["chat", "openai-realtime-ga", "openai-realtime-beta"]


def choose_protocol(setting: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Protocol:
    """The dialect of a connection.

    With ``auto``, an upgrade with a ``model`` query parameter (the OpenAI
    SDKs send ``?model=...``) or an ``OpenAI-Beta: realtime=v1`` header speaks
    the Realtime API; any other speaks chat frames. A Realtime client that
    sent the beta header gets the beta names.
    """
    beta = "realtime=v1" in headers.get("OpenAI-Beta", "").replace(" ", "").split(",")
    realtime = setting == "openai-realtime" or (setting == "auto" and (beta or "model" in query))
    if not realtime:
        return "chat"
    return "openai-realtime-beta" if beta else "openai-realtime-ga"
