"""Wire types: what crosses the daemon's edges, and the neutral events between its layers.

The bottom layer, with :mod:`~realtime_daemon.config`: msgspec Structs and
dataclasses, the one decoder and encoder, no I/O. It imports nothing of the
daemon; every other layer may import it.

- :mod:`.chat`: the chat-completion wire (requests, chunks, envelopes);
- :mod:`.events`: what a dialect makes of a client frame (inbound), and
  what an engine's answer becomes (outbound), for the session;
- :mod:`.http`: a refusal before the upgrade.
"""
