"""Seed-compatible location of the streaming helpers (``StreamChunk``, ``tool``)."""

from snakepit_bridge._adapter import StreamChunk, tool

__all__ = ["StreamChunk", "tool"]
