"""Runtime thread-safety checks for thread-profile adapters (``thread_safety_checks = true``).

``ThreadSafetyChecker`` records which threads run each method and warns (``RuntimeWarning``
and a log line such as ``Method 'predict' accessed by 2 different threads concurrently``) when
a method that is not serialised by ``@thread_safe_method`` runs on two threads at the same
time; ``strict_mode`` raises ``RuntimeError`` instead. It also flags imported libraries known
not to be thread-safe (pandas, matplotlib, sqlite3). The worker server turns the global
checker on with ``--thread-safety-check`` (the host passes it when the pool sets
``thread_safety_checks = true``) and runs every tool call through :meth:`ThreadSafetyChecker.guard`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
import time
import warnings
from collections import defaultdict
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Type, TypeVar, cast

from .logging_config import get_logger

__all__ = [
    "ThreadSafetyChecker",
    "check_common_pitfalls",
    "check_thread_safe",
    "disable_checking",
    "enable_checking",
    "get_global_checker",
    "print_thread_safety_report",
    "require_thread_safe_adapter",
    "validate_adapter_thread_safety",
]

logger = get_logger("thread_safety_checker")


class ThreadSafetyChecker:
    """Tracks method access per thread and warns about concurrent access and unsafe libraries."""

    UNSAFE_LIBRARIES: Dict[str, Dict[str, str]] = {
        "pandas": {
            "reason": "DataFrame operations are not thread-safe",
            "safe_pattern": "Guard shared DataFrames with a lock, or use the process profile",
        },
        "matplotlib": {
            "reason": "pyplot's global state is not thread-safe",
            "safe_pattern": "Use one Figure per thread (the object API), never pyplot, from tool threads",
        },
        "sqlite3": {
            "reason": "connections refuse use from other threads by default (check_same_thread)",
            "safe_pattern": "Open one connection per thread (get_thread_local)",
        },
    }

    def __init__(self, enabled: bool = True, strict_mode: bool = False) -> None:
        self.enabled = enabled
        self.strict_mode = strict_mode
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded."""
        with self._lock if hasattr(self, "access_map") else contextlib.nullcontext():
            self.access_map: Dict[str, Set[int]] = defaultdict(set)
            self.running: Dict[str, Dict[int, int]] = defaultdict(lambda: defaultdict(int))
            self.concurrent: Dict[str, int] = {}
            self.warnings_issued: Set[str] = set()
            self.thread_stats: Dict[int, Dict[str, Any]] = defaultdict(
                lambda: {"calls": 0, "total_time": 0.0, "methods": set()}
            )
            self.start_time = time.time()

    def check_method_access(self, method_name: str, caller_frame: Any = None) -> None:
        """Record that this thread accessed ``method_name``; warns once when several threads did."""
        if not self.enabled:
            return
        tid = threading.get_ident()
        with self._lock:
            self.access_map[method_name].add(tid)
            stats = self.thread_stats[tid]
            stats["calls"] += 1
            stats["methods"].add(method_name)
            threads = len(self.access_map[method_name])
        if threads > 1:
            self._warn(
                f"{method_name}_threads",
                f"Method '{method_name}' accessed by {threads} different threads "
                f"(current: {threading.current_thread().name})",
                caller_frame,
                escalate=False,
            )

    @contextlib.contextmanager
    def guard(self, method_name: str, serialized: bool = False) -> Iterator[None]:
        """Run a call of ``method_name``, warning when another thread runs it at the same time.

        ``serialized`` methods (``@thread_safe_method``) cannot overlap and are only recorded.
        """
        if not self.enabled:
            yield
            return
        self.check_method_access(method_name)
        tid = threading.get_ident()
        with self._lock:
            running = self.running[method_name]
            running[tid] += 1
            others = len([t for t, n in running.items() if n > 0])
        if others > 1 and not serialized:
            with self._lock:
                self.concurrent[method_name] = max(self.concurrent.get(method_name, 0), others)
            self._warn(
                f"{method_name}_concurrent",
                f"THREAD SAFETY: Method '{method_name}' accessed by {others} different threads concurrently; "
                "guard shared state with self.acquire_lock() or mark the method @thread_safe_method",
                None,
                escalate=True,
            )
        started = time.time()
        try:
            yield
        finally:
            with self._lock:
                self.running[method_name][tid] -= 1
                self.thread_stats[tid]["total_time"] += time.time() - started

    @contextlib.contextmanager
    def track_execution(self, method_name: str) -> Iterator[None]:
        """Add the block's duration to this thread's statistics."""
        started = time.time()
        try:
            yield
        finally:
            if self.enabled:
                with self._lock:
                    self.thread_stats[threading.get_ident()]["total_time"] += time.time() - started

    def check_library_safety(self, imported_modules: Optional[Set[str]] = None) -> List[str]:
        """Warn about imported libraries known not to be thread-safe; returns the warnings."""
        if not self.enabled:
            return []
        modules = set(sys.modules) if imported_modules is None else set(imported_modules)
        found = []
        for name, info in self.UNSAFE_LIBRARIES.items():
            if name in modules:
                message = f"THREAD SAFETY: library '{name}' is not thread-safe: {info['reason']}; {info['safe_pattern']}"
                found.append(message)
                self._warn(f"unsafe_lib_{name}", message, None, escalate=True)
        return found

    def _warn(self, key: str, message: str, frame: Any, escalate: bool) -> None:
        with self._lock:
            if key in self.warnings_issued:
                return
            self.warnings_issued.add(key)
        if frame is not None:
            message += f" (called from {frame.f_code.co_filename}:{frame.f_lineno})"
        if self.strict_mode and escalate:
            raise RuntimeError(message)
        logger.warning("%s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)

    def get_report(self) -> Dict[str, Any]:
        """What was recorded: concurrent accesses, threads, warnings and recommendations."""
        with self._lock:
            concurrent = dict(self.concurrent)
            report = {
                "enabled": self.enabled,
                "strict_mode": self.strict_mode,
                "total_runtime": time.time() - self.start_time,
                "warnings_issued": len(self.warnings_issued),
                "warnings": sorted(self.warnings_issued),
                "concurrent_accesses": concurrent,
                "total_methods_tracked": len(self.access_map),
                "total_threads_seen": len(self.thread_stats),
                "thread_utilization": {
                    tid: {
                        "calls": s["calls"],
                        "total_time": s["total_time"],
                        "methods": sorted(s["methods"]),
                        "avg_time_per_call": s["total_time"] / s["calls"] if s["calls"] else 0.0,
                    }
                    for tid, s in self.thread_stats.items()
                },
            }
        recommendations = []
        if concurrent:
            recommendations.append(
                f"{len(concurrent)} methods accessed concurrently. Ensure proper locking or use thread-local storage."
            )
        if report["total_threads_seen"] == 1:
            recommendations.append("Only one thread detected. Consider testing with more threads_per_worker.")
        if not report["warnings_issued"]:
            recommendations.append("No thread safety issues detected.")
        report["recommendations"] = recommendations
        return report

    def __enter__(self) -> "ThreadSafetyChecker":
        self.reset()
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        if self.enabled:
            for line in self.get_report()["recommendations"]:
                logger.info("thread safety: %s", line)


_global_checker = ThreadSafetyChecker(enabled=False)

F = TypeVar("F", bound=Callable[..., Any])


def enable_checking(strict_mode: bool = False) -> ThreadSafetyChecker:
    """Turn the global checker on (a fresh one) and return it."""
    global _global_checker
    _global_checker = ThreadSafetyChecker(enabled=True, strict_mode=strict_mode)
    logger.info("thread safety checking enabled%s", " (strict mode)" if strict_mode else "")
    return _global_checker


def disable_checking() -> None:
    """Turn the global checker off."""
    _global_checker.enabled = False


def get_global_checker() -> ThreadSafetyChecker:
    """The global checker (off unless enabled)."""
    return _global_checker


def check_thread_safe(func: F) -> F:
    """Run every call of ``func`` through the global checker."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = inspect.currentframe()
        _global_checker.check_method_access(func.__name__, frame.f_back if frame else None)
        with _global_checker.guard(func.__name__, serialized=bool(getattr(func, "__thread_safe__", False))):
            return func(*args, **kwargs)

    return cast(F, wrapper)


def require_thread_safe_adapter(func: F) -> F:
    """Decorate ``func(adapter, ...)`` to raise ``ValueError`` unless the adapter is declared thread-safe."""

    @functools.wraps(func)
    def wrapper(adapter: Any, *args: Any, **kwargs: Any) -> Any:
        if not hasattr(adapter, "__thread_safe__"):
            raise ValueError(
                f"Adapter {type(adapter).__name__} does not declare thread safety. "
                "Set __thread_safe__ = True if the adapter is thread-safe."
            )
        if not adapter.__thread_safe__:
            raise ValueError(
                f"Adapter {type(adapter).__name__} is explicitly marked as NOT thread-safe. "
                "Use process mode instead of threaded mode."
            )
        return func(adapter, *args, **kwargs)

    return cast(F, wrapper)


def validate_adapter_thread_safety(adapter_class: type) -> bool:
    """Whether the class declares ``__thread_safe__ = True`` (raises in strict mode when not)."""
    safe = getattr(adapter_class, "__thread_safe__", False) is True
    if not safe and _global_checker.strict_mode:
        raise ValueError(f"Adapter {adapter_class.__name__} is not thread-safe. Required: __thread_safe__ = True")
    return safe


def check_common_pitfalls(adapter: Any) -> List[str]:
    """Warnings about an adapter instance: unguarded mutable state, no declaration, unsafe libraries."""
    found = []
    mutable = sorted(
        name for name, value in vars(adapter).items() if not name.startswith("_") and isinstance(value, (list, dict, set))
    )
    if mutable and not hasattr(adapter, "_lock"):
        found.append(f"Adapter has mutable shared state {mutable} but no lock; use ThreadSafeAdapter.acquire_lock()")
    if not hasattr(type(adapter), "__thread_safe__"):
        found.append("Adapter does not declare __thread_safe__. Add __thread_safe__ = True/False to your adapter class.")
    found.extend(_global_checker.check_library_safety())
    return found


def print_thread_safety_report() -> None:
    """Log the global checker's report."""
    report = _global_checker.get_report()
    lines = [
        "Thread Safety Analysis Report",
        f"  Threads Detected: {report['total_threads_seen']}",
        f"  Methods Tracked: {report['total_methods_tracked']}",
        f"  Warnings Issued: {report['warnings_issued']}",
    ]
    lines += [f"  - {m}: {n} threads" for m, n in report["concurrent_accesses"].items()]
    lines += [f"  {r}" for r in report["recommendations"]]
    logger.info("\n".join(lines))
