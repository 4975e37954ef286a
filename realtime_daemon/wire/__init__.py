"""Wire types: what crosses the daemon's edges, and the neutral events between its layers.

The bottom layer, with :mod:`~realtime_daemon.config`: msgspec Structs and
dataclasses, no I/O. It imports nothing of the
daemon; every other layer may import it.

- :mod:`.chat`: the chat-completion wire (requests, chunks, envelopes);
- :mod:`.events`: what a dialect makes of a client frame, for the session;
- :mod:`.chunks`: what an engine's answer says, read once into neutral events;
- :mod:`.http`: a refusal before the upgrade;
- :mod:`.grants`: what a session may do under its key (models, quotas, usage).
"""
