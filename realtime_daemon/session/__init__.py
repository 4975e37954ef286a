"""The session: a connection's requests become answers, in order, numbered once.

Plain asyncio, no aiohttp. It may import :mod:`~realtime_daemon.dialects`,
:mod:`~realtime_daemon.engines`, :mod:`~realtime_daemon.wire` and
:mod:`~realtime_daemon.config`; the transport above it drives it.

- :mod:`.channel`: the bounded FIFO between the reader and the session;
- :mod:`.scheduler`: :class:`~.scheduler.Session`, a task per answer;
- :mod:`.answers`: an answer's bookkeeping, and how a session ends;
- :mod:`.outbox`: the one place envelopes are numbered and written;
- :mod:`.replay`: a resumable session's replay buffer;
- :mod:`.resume`: resumable sessions by token, and the resume checks;
- :mod:`.host`: a session across WebSockets (attached, held, ended).
"""
