"""The server: the aiohttp application, admission, metrics, and the process around it.

Routes and shared state (:mod:`.app`), who gets in (:mod:`.admission`;
named keys :mod:`.keys`, client secrets :mod:`.client_secrets` and their
endpoints :mod:`.mint`), the keys' quotas and usage (:mod:`.quotas`, shared
through Redis by :mod:`.redis_counters`), the drain registry
(:mod:`.connections`), Prometheus (:mod:`.metrics`), serving until a signal
(:mod:`.serve`) as a daemon on its own or a worker (:mod:`.roles`), on its
sockets (:mod:`.sockets`), answering signals (:mod:`.signals`), ``--workers``
(:mod:`.workers`), systemd
(:mod:`.systemd`) and logging (:mod:`.logs`). It may import every layer
below it (transport, session, dialects, engines, wire, config); only the
command line imports it.
"""
