"""Seed-compatible import path: ``from snakepit_bridge.base_adapter import BaseAdapter, tool``."""

from ._adapter import BaseAdapter, ParameterSpec, StreamChunk, ToolMetadata, ToolSpec, tool

__all__ = ["BaseAdapter", "ParameterSpec", "StreamChunk", "ToolMetadata", "ToolSpec", "tool"]
