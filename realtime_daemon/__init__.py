"""realtime-daemon: a WebSocket gateway that streams LLM chat completions."""

__version__ = "0.1.0"
