"""``ThreadSafeAdapter`` and ``@thread_safe_method``: adapters for the thread profile."""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from typing import Any, Callable, Dict, Iterator, Optional, TypeVar

from ._adapter import BaseAdapter

F = TypeVar("F", bound=Callable[..., Any])

class RequestTracker:
    """Counts requests running through ``@thread_safe_method`` methods."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total_requests = 0
        self.active_requests = 0
        self.peak_active_requests = 0

    def begin(self) -> None:
        with self._lock:
            self.total_requests += 1
            self.active_requests += 1
            self.peak_active_requests = max(self.peak_active_requests, self.active_requests)

    def end(self) -> None:
        with self._lock:
            self.active_requests -= 1


class ThreadSafeAdapter(BaseAdapter):
    """Base class of adapters that serve several calls at once (``--mode threaded``).

    Declare ``__thread_safe__ = True`` on the subclass to state that its tools may run
    concurrently. Shared mutable state goes under ``with self.acquire_lock():``; per-thread
    caches use ``get_thread_local`` / ``set_thread_local`` / ``clear_thread_local``.
    """

    __thread_safe__ = False
    max_workers: int = 1

    def __init__(self) -> None:
        self._snakepit_lock = threading.RLock()
        self._snakepit_local = threading.local()
        self._snakepit_tracker = RequestTracker()

    # Subclasses that forget ``super().__init__()`` still get working primitives.
    def _primitives(self):
        if "_snakepit_lock" not in self.__dict__:
            ThreadSafeAdapter.__init__(self)
        return self._snakepit_lock, self._snakepit_local, self._snakepit_tracker

    @contextlib.contextmanager
    def acquire_lock(self, timeout: Optional[float] = None) -> Iterator[None]:
        """Hold the adapter's (re-entrant) lock for the ``with`` block.

        Raises ``TimeoutError`` when ``timeout`` seconds pass without getting it.
        """
        lock, _, _ = self._primitives()
        if not lock.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"could not acquire the adapter lock within {timeout} s")
        try:
            yield
        finally:
            lock.release()

    def get_thread_local(self, key: str, default: Any = None) -> Any:
        """Return this thread's value for ``key`` (``default`` when unset)."""
        _, local, _ = self._primitives()
        return getattr(local, "values", {}).get(key, default)

    def set_thread_local(self, key: str, value: Any) -> None:
        """Set this thread's value for ``key``."""
        _, local, _ = self._primitives()
        if not hasattr(local, "values"):
            local.values = {}
        local.values[key] = value

    def clear_thread_local(self, key: Optional[str] = None) -> None:
        """Forget this thread's value for ``key``, or all of them when ``key`` is None."""
        _, local, _ = self._primitives()
        values: Dict[str, Any] = getattr(local, "values", {})
        if key is None:
            values.clear()
        else:
            values.pop(key, None)

    def get_stats(self) -> Dict[str, Any]:
        """Request counters of ``@thread_safe_method`` methods and the thread pool size."""
        _, _, tracker = self._primitives()
        workers = max(1, int(self.max_workers or 1))
        return {
            "total_requests": tracker.total_requests,
            "active_requests": tracker.active_requests,
            "peak_active_requests": tracker.peak_active_requests,
            "max_workers": workers,
            "thread_utilization": tracker.active_requests / workers,
        }


def thread_safe_method(func: F) -> F:
    """Track a ``ThreadSafeAdapter`` method's requests (``get_stats``); keeps ``@tool`` metadata.

    It takes no lock itself: guard shared mutable state with ``self.acquire_lock()``.
    """

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def agen_wrapper(self, *args, **kwargs):
            with _tracked(self):
                async for item in func(self, *args, **kwargs):
                    yield item

        return agen_wrapper  # type: ignore[return-value]

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(self, *args, **kwargs):
            with _tracked(self):
                return await func(self, *args, **kwargs)

        return async_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(self, *args, **kwargs):
            with _tracked(self):
                yield from func(self, *args, **kwargs)

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        with _tracked(self):
            return func(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _tracked(adapter: Any) -> Iterator[None]:
    """Count one request on a ``ThreadSafeAdapter`` (other objects are not tracked)."""
    if not isinstance(adapter, ThreadSafeAdapter):
        yield
        return
    tracker = adapter._primitives()[2]
    tracker.begin()
    try:
        yield
    finally:
        tracker.end()


def is_thread_safe(adapter: Any) -> bool:
    """Whether an adapter declares that its tools may run concurrently."""
    return bool(getattr(adapter, "__thread_safe__", False))
