"""The daemon's settings: what ``serve`` can be told, from options, environment and TOML.

The bottom layer, beside :mod:`~realtime_daemon.wire`: it imports nothing of
the daemon. :mod:`.settings` is the frozen :class:`Config`, each field described
by its metadata (:mod:`.engine_settings` those that are the built-in engines'
options too, :mod:`.speech_settings` the speech-to-text ones); :mod:`.toml` the
``--config`` file; :mod:`.options` the click options of ``serve`` made from the
fields (click is imported only there).
"""

from realtime_daemon.config.settings import (
    ENDPOINTS,
    ENGINE_SETTINGS,
    LOG_FORMATS,
    LOG_LEVELS,
    LOOPS,
    PROTOCOLS,
    Config,
    ModelConfig,
    is_secret,
    masked_repr,
)
from realtime_daemon.config.toml import ConfigFileError, read_config_file, to_toml

__all__ = [
    "ENDPOINTS",
    "ENGINE_SETTINGS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "LOOPS",
    "PROTOCOLS",
    "Config",
    "ConfigFileError",
    "ModelConfig",
    "is_secret",
    "masked_repr",
    "read_config_file",
    "to_toml",
]
