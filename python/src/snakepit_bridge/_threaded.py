"""``ThreadSafeAdapter`` and ``@thread_safe_method``: adapters for the thread profile."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
from collections import defaultdict
from typing import Any, AsyncIterator, Callable, Dict, Iterator, Optional, Tuple, TypeVar, cast

from ._adapter import BaseAdapter

F = TypeVar("F", bound=Callable[..., Any])


class ThreadLocalStorage:
    """Values private to each thread (the original's ``ThreadLocalStorage``)."""

    def __init__(self) -> None:
        self._storage = threading.local()

    def get(self, key: str, default: Any = None) -> Any:
        """This thread's value for ``key``."""
        return getattr(self._storage, key, default)

    def set(self, key: str, value: Any) -> None:
        """Set this thread's value for ``key``."""
        setattr(self._storage, key, value)

    def delete(self, key: str) -> None:
        """Forget this thread's value for ``key``."""
        try:
            delattr(self._storage, key)
        except AttributeError:
            pass

    def clear(self) -> None:
        """Forget all of this thread's values."""
        self._storage.__dict__.clear()


class RequestTracker:
    """Counts requests per thread (the original's ``RequestTracker``: ``start_request``/``end_request``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests_by_thread: Dict[int, int] = defaultdict(int)
        self.active_requests: Dict[int, int] = defaultdict(int)
        self.total_requests = 0
        self.peak_active_requests = 0

    @property
    def active(self) -> int:
        """Requests running now, over all threads."""
        with self.lock:
            return sum(self.active_requests.values())

    def start_request(self, thread_id: Optional[int] = None) -> int:
        """Count a request starting on ``thread_id`` (default: this thread); returns its number."""
        tid = threading.get_ident() if thread_id is None else thread_id
        with self.lock:
            self.total_requests += 1
            self.requests_by_thread[tid] += 1
            self.active_requests[tid] += 1
            self.peak_active_requests = max(self.peak_active_requests, sum(self.active_requests.values()))
            return self.total_requests

    def end_request(self, thread_id: Optional[int] = None) -> None:
        """Count a request of ``thread_id`` (default: this thread) ending."""
        tid = threading.get_ident() if thread_id is None else thread_id
        with self.lock:
            if self.active_requests[tid] > 0:
                self.active_requests[tid] -= 1

    # Our earlier names.
    def begin(self) -> None:
        self.start_request()

    def end(self) -> None:
        self.end_request()

    def get_stats(self) -> Dict[str, int]:
        """total_requests, active_threads, total_active_requests, threads_seen."""
        with self.lock:
            return {
                "total_requests": self.total_requests,
                "active_threads": len([c for c in self.active_requests.values() if c > 0]),
                "total_active_requests": sum(self.active_requests.values()),
                "threads_seen": len(self.requests_by_thread),
            }


class ThreadSafeAdapter(BaseAdapter):
    """Base class of adapters that serve several calls at once (``--mode threaded``).

    Declare ``__thread_safe__ = True`` on the subclass to state that its tools may run
    concurrently. Shared mutable state goes under ``with self.acquire_lock():``; per-thread
    caches use ``get_thread_local`` / ``set_thread_local`` / ``clear_thread_local``. The base
    hands subclasses the original's attributes: ``self._lock`` (re-entrant), ``self._thread_local``
    (a ``ThreadLocalStorage``) and ``self._tracker`` (a ``RequestTracker``).
    """

    __thread_safe__ = False
    max_workers: int = 1

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._thread_local = ThreadLocalStorage()
        self._tracker = RequestTracker()
        self._method_locks: Dict[str, Any] = {}
        self._method_locks_guard = threading.Lock()

    # Subclasses that forget ``super().__init__()`` still get working primitives.
    def _primitives(self) -> Tuple["threading.RLock", ThreadLocalStorage, RequestTracker]:
        if "_tracker" not in self.__dict__ or "_method_locks" not in self.__dict__:
            ThreadSafeAdapter.__init__(self)
        return self._lock, self._thread_local, self._tracker

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
        return self._primitives()[1].get(key, default)

    def set_thread_local(self, key: str, value: Any) -> None:
        """Set this thread's value for ``key``."""
        self._primitives()[1].set(key, value)

    def clear_thread_local(self, key: Optional[str] = None) -> None:
        """Forget this thread's value for ``key``, or all of them when ``key`` is None."""
        local = self._primitives()[1]
        if key is None:
            local.clear()
        else:
            local.delete(key)

    @contextlib.contextmanager
    def track_request(self, request_id: Optional[str] = None) -> Iterator[int]:
        """Count the ``with`` block as one request (the original's ``track_request``)."""
        tracker = self._primitives()[2]
        number = tracker.start_request()
        try:
            yield number
        finally:
            tracker.end_request()

    def get_stats(self) -> Dict[str, Any]:
        """Request counters of ``@thread_safe_method`` methods and the thread pool size.

        Holds our keys (total_requests, active_requests, peak_active_requests, max_workers,
        thread_utilization) and the original's (adapter_class, thread_safe, tracker).
        """
        tracker = self._primitives()[2]
        workers = max(1, int(self.max_workers or 1))
        active = tracker.active
        return {
            "total_requests": tracker.total_requests,
            "active_requests": active,
            "peak_active_requests": tracker.peak_active_requests,
            "max_workers": workers,
            "thread_utilization": active / workers,
            "adapter_class": type(self).__name__,
            "thread_safe": bool(getattr(self, "__thread_safe__", False)),
            "tracker": tracker.get_stats(),
        }

    def _method_lock(self, name: str, kind: str) -> Any:
        """The lock serialising calls of method ``name`` (threading or asyncio, by ``kind``)."""
        self._primitives()
        key = f"{kind}:{name}"
        with self._method_locks_guard:
            lock = self._method_locks.get(key)
            if lock is None:
                lock = asyncio.Lock() if kind == "async" else threading.RLock()
                self._method_locks[key] = lock
            return lock


def thread_safe_method(func: F) -> F:
    """Serialise and track calls of a ``ThreadSafeAdapter`` method; keeps ``@tool`` metadata.

    Calls of the decorated method on one adapter run one at a time (a per-method lock, an
    ``asyncio.Lock`` for async methods; a generator holds it until it is exhausted or closed);
    other methods still run concurrently. Each call counts in ``get_stats()``. The wrapper is
    marked ``__thread_safe__ = True``, which the thread-safety checker trusts. On objects that
    are not ``ThreadSafeAdapter`` it only calls through.
    """
    name = func.__name__

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def agen_wrapper(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            if not isinstance(self, ThreadSafeAdapter):
                async for item in func(self, *args, **kwargs):
                    yield item
                return
            async with self._method_lock(name, "async"):
                with _tracked(self):
                    async for item in func(self, *args, **kwargs):
                        yield item

        wrapper: Any = agen_wrapper
    elif inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(self, ThreadSafeAdapter):
                return await func(self, *args, **kwargs)
            async with self._method_lock(name, "async"):
                with _tracked(self):
                    return await func(self, *args, **kwargs)

        wrapper = async_wrapper
    elif inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            if not isinstance(self, ThreadSafeAdapter):
                yield from func(self, *args, **kwargs)
                return
            with self._method_lock(name, "sync"), _tracked(self):
                yield from func(self, *args, **kwargs)

        wrapper = gen_wrapper
    else:

        @functools.wraps(func)
        def sync_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(self, ThreadSafeAdapter):
                return func(self, *args, **kwargs)
            with self._method_lock(name, "sync"), _tracked(self):
                return func(self, *args, **kwargs)

        wrapper = sync_wrapper
    wrapper.__thread_safe__ = True
    return cast(F, wrapper)


@contextlib.contextmanager
def _tracked(adapter: ThreadSafeAdapter) -> Iterator[None]:
    tracker = adapter._primitives()[2]
    tracker.start_request()
    try:
        yield
    finally:
        tracker.end_request()


def require_thread_safe(func: F) -> F:
    """Decorate ``func(adapter, ...)`` to raise ``ValueError`` unless the adapter declares thread safety."""

    @functools.wraps(func)
    def wrapper(adapter: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_thread_safe(adapter):
            raise ValueError(
                f"Adapter {type(adapter).__name__} is not thread-safe. "
                "Set __thread_safe__ = True if adapter supports concurrent access."
            )
        return func(adapter, *args, **kwargs)

    return cast(F, wrapper)


def validate_thread_safety(adapter_class: type) -> bool:
    """Whether a class declares ``__thread_safe__ = True``."""
    return getattr(adapter_class, "__thread_safe__", False) is True


def is_thread_safe(adapter: Any) -> bool:
    """Whether an adapter declares that its tools may run concurrently."""
    return bool(getattr(adapter, "__thread_safe__", False))
