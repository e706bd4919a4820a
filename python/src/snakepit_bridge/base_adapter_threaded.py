"""Seed-compatible import path of the thread-profile adapter API.

``from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool``
"""

from ._adapter import BaseAdapter, ToolMetadata, tool
from ._threaded import (
    RequestTracker,
    ThreadLocalStorage,
    ThreadSafeAdapter,
    require_thread_safe,
    thread_safe_method,
    validate_thread_safety,
)

__all__ = [
    "BaseAdapter",
    "RequestTracker",
    "ThreadLocalStorage",
    "ThreadSafeAdapter",
    "ToolMetadata",
    "require_thread_safe",
    "thread_safe_method",
    "tool",
    "validate_thread_safety",
]
