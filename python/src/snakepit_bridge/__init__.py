"""snakepit_bridge: the Python side of snakepit-rs.

Write an adapter by subclassing :class:`BaseAdapter` and marking methods with :func:`tool`;
the host runs it with ``python -m snakepit_bridge.server --adapter pkg.module.YourAdapter``.
"""

from . import telemetry
from ._adapter import BaseAdapter, ParameterSpec, StreamChunk, ToolSpec, tool
from ._context import HostBridgeUnavailableError, HostToolError, SessionContext
from ._threaded import ThreadSafeAdapter, thread_safe_method

__all__ = [
    "BaseAdapter",
    "HostBridgeUnavailableError",
    "HostToolError",
    "ParameterSpec",
    "SessionContext",
    "StreamChunk",
    "ThreadSafeAdapter",
    "ToolSpec",
    "telemetry",
    "thread_safe_method",
    "tool",
]

__version__ = "0.1.0"
