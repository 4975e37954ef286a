"""The OpenAI Realtime API (text) as a dialect of ``/v1/realtime``.

:mod:`.wire` holds its names and settings checks, :mod:`.conversation` the
session's items and their chat messages, :mod:`.response` a response's
events, :mod:`.dialect` the dialect the session drives; :mod:`.audio_input`,
:mod:`.hearing`, :mod:`.voice` and :mod:`.voice_events` the input audio (settings, the
buffer and turns, their events). See
docs/openai-realtime.md for what is supported and what is refused.
"""

from realtime_daemon.dialects.realtime.dialect import RealtimeDialect
from realtime_daemon.dialects.realtime.hearing import Hearing, VoiceObserver
from realtime_daemon.dialects.realtime.speaking import Voice
from realtime_daemon.dialects.realtime.wire import BETA, GA, Names

__all__ = ["BETA", "GA", "Hearing", "Names", "RealtimeDialect", "Voice", "VoiceObserver"]
