"""Engines turn a connection's stream of requests into a stream of envelopes."""

from .base import Context, Engine, EngineFactory

__all__ = ["Context", "Engine", "EngineFactory"]
