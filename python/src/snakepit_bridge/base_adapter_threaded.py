"""Seed-compatible import path of the thread-profile adapter API.

``from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method, tool``
"""

from ._adapter import tool
from ._threaded import RequestTracker, ThreadSafeAdapter, thread_safe_method

__all__ = ["RequestTracker", "ThreadSafeAdapter", "thread_safe_method", "tool"]
