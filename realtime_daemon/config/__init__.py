"""The daemon's settings: what ``serve`` can be told, from options, environment and TOML.

The bottom layer, beside :mod:`~realtime_daemon.wire`: it imports nothing of
the daemon. :mod:`.settings` is the frozen :class:`Config`; :mod:`.options`
the click options of ``serve`` made from it (click is imported only there).
"""

from realtime_daemon.config.settings import (
    LOG_FORMATS,
    LOG_LEVELS,
    LOOPS,
    PROTOCOLS,
    Config,
    ConfigFileError,
    ModelConfig,
    read_config_file,
    to_toml,
)

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "LOOPS",
    "PROTOCOLS",
    "Config",
    "ConfigFileError",
    "ModelConfig",
    "read_config_file",
    "to_toml",
]
