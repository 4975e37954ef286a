"""The keys' and the fleet's settings (``--keys-file``, ``--secret-key-file``, ...): their
types and descriptions.

Fields of :class:`~.settings.Config`, kept here so that the settings module stays
one screenful per concern; :mod:`realtime_daemon.server.keys` reads them.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

__all__ = ["KeysFile", "MaxClientSecretTTL", "RedisURL", "SecretKeyFile"]

RedisURL = Annotated[
    str | None,
    Meta(
        description="Redis URL (redis://HOST:PORT/DB) for the state instances share: "
        "the Responses store and the keys' counters"
    ),
]
KeysFile = Annotated[
    str | None,
    Meta(
        description="Named keys (TOML `[[keys]]`: `name`, `token` or `sha256`, `models`, "
        "`disabled`, `max_sessions`, `requests_per_minute`, `tokens_per_minute`); when "
        "set, every upgrade needs a key's token or client secret. Reloaded on SIGHUP."
    ),
]
SecretKeyFile = Annotated[
    str | None,
    Meta(
        description="The key client secrets are signed with (HMAC-SHA256, the file's "
        "bytes); instances sharing it accept each other's secrets. Without it, "
        "`/v1/realtime/client_secrets` answers 501."
    ),
]
MaxClientSecretTTL = Annotated[
    Annotated[int, Meta(ge=10)],
    Meta(description="Seconds a client secret may live at most (`expires_after.seconds`)."),
]
