"""Deprecated: the chat wire types moved to :mod:`realtime_daemon.wire.chat`.

Engines import from :mod:`realtime_daemon.engines.api`. This module stays
for engines written against earlier versions, and will be removed.
"""

import warnings

from realtime_daemon.wire.chat import *  # noqa: F403
from realtime_daemon.wire.chat import __all__ as __all__

warnings.warn(
    "realtime_daemon.protocol is deprecated: import from realtime_daemon.engines.api",
    DeprecationWarning,
    stacklevel=2,
)
