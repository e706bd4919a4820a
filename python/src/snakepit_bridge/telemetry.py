"""Python-side telemetry: ``emit``, ``span`` and correlation ids, streamed to the host.

Events go into a bounded buffer (1 024 events; when full, new events are dropped rather than
blocking the tool). The worker server drains it over the ``StreamTelemetry`` RPC, through
which the host can also toggle telemetry, set a sampling rate and allow/deny event globs.
Event names are dotted (``python.call.stop``); on the wire they become ``event_parts``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import fnmatch
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Iterator, List, Mapping, Optional

__all__ = [
    "TelemetryEventRecord",
    "emit",
    "get_correlation_id",
    "new_correlation_id",
    "reset_correlation_id",
    "set_correlation_id",
    "span",
]

BUFFER_CAPACITY = 1024

_correlation_id: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("snakepit_correlation_id", default=None)


@dataclass
class TelemetryEventRecord:
    """One event waiting to be streamed to the host."""

    name: str
    measurements: Dict[str, Any]
    metadata: Dict[str, str]
    timestamp_ns: int
    correlation_id: str = ""


@dataclass
class _Controls:
    enabled: bool = True
    sampling_rate: float = 1.0
    sampling_patterns: List[str] = field(default_factory=list)
    allow: List[str] = field(default_factory=list)
    deny: List[str] = field(default_factory=list)

    def admits(self, name: str) -> bool:
        if not self.enabled:
            return False
        if self.deny and any(fnmatch.fnmatchcase(name, p) for p in self.deny):
            return False
        if self.allow and not any(fnmatch.fnmatchcase(name, p) for p in self.allow):
            return False
        if self.sampling_rate < 1.0:
            sampled = not self.sampling_patterns or any(fnmatch.fnmatchcase(name, p) for p in self.sampling_patterns)
            if sampled and random.random() >= self.sampling_rate:
                return False
        return True


class TelemetryBuffer:
    """The bounded, thread-safe event buffer shared by tools (producers) and the stream (consumer)."""

    def __init__(self, capacity: int = BUFFER_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._events: Deque[TelemetryEventRecord] = collections.deque()
        self._capacity = capacity
        self._waiters: List[tuple] = []
        self.controls = _Controls()
        self.dropped = 0

    def push(self, event: TelemetryEventRecord) -> bool:
        """Buffer an event; returns False when it was filtered out or the buffer is full."""
        with self._lock:
            if not self.controls.admits(event.name):
                return False
            if len(self._events) >= self._capacity:
                self.dropped += 1
                return False
            self._events.append(event)
            waiters, self._waiters = self._waiters, []
        for loop, ready in waiters:
            with contextlib.suppress(RuntimeError):  # the consumer's loop is closed
                loop.call_soon_threadsafe(ready.set)
        return True

    async def next_event(self) -> TelemetryEventRecord:
        """Wait for and take the oldest buffered event (for the streaming consumer)."""
        loop = asyncio.get_running_loop()
        while True:
            ready = asyncio.Event()
            with self._lock:
                if self._events:
                    return self._events.popleft()
                self._waiters.append((loop, ready))
            await ready.wait()

    def apply_control(self, *, enabled=None, sampling_rate=None, patterns=None, allow=None, deny=None) -> None:
        """Change what is recorded (the host's TelemetryControl messages)."""
        with self._lock:
            c = self.controls
            if enabled is not None:
                c.enabled = bool(enabled)
            if sampling_rate is not None:
                c.sampling_rate = min(1.0, max(0.0, float(sampling_rate)))
                c.sampling_patterns = list(patterns or [])
            if allow is not None:
                c.allow = list(allow)
            if deny is not None:
                c.deny = list(deny)

    def drain(self) -> List[TelemetryEventRecord]:
        """Take every buffered event (tests and shutdown)."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events


BUFFER = TelemetryBuffer()


def emit(
    event: str,
    measurements: Optional[Mapping[str, Any]] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    correlation_id: Optional[str] = None,
) -> bool:
    """Record an event (``"model.inference"``) with numeric/string measurements and metadata.

    Never blocks: returns False when the event was filtered, sampled out or dropped.
    """
    record = TelemetryEventRecord(
        name=event,
        measurements=dict(measurements or {}),
        metadata={str(k): str(v) for k, v in (metadata or {}).items()},
        timestamp_ns=time.time_ns(),
        correlation_id=correlation_id or _correlation_id.get() or "",
    )
    return BUFFER.push(record)


@contextlib.contextmanager
def span(name: str, metadata: Optional[Mapping[str, Any]] = None) -> Iterator[None]:
    """Time a block: emits ``<name>.start``, then ``<name>.stop`` or ``<name>.exception``.

    Stop and exception events carry ``duration`` in nanoseconds; spans nest freely.
    """
    meta = dict(metadata or {})
    emit(f"{name}.start", {"system_time": time.time_ns()}, meta)
    started = time.monotonic_ns()
    try:
        yield
    except BaseException as exc:
        emit(f"{name}.exception", {"duration": time.monotonic_ns() - started}, {**meta, "error_type": type(exc).__name__})
        raise
    emit(f"{name}.stop", {"duration": time.monotonic_ns() - started}, meta)


def new_correlation_id() -> str:
    """Return a fresh correlation id (it is not set; see ``set_correlation_id``)."""
    return uuid.uuid4().hex


def set_correlation_id(correlation_id: Optional[str]) -> contextvars.Token:
    """Set the correlation id of the current call (events emitted from here carry it)."""
    return _correlation_id.set(correlation_id)


def get_correlation_id() -> Optional[str]:
    """The correlation id of the current call, if any."""
    return _correlation_id.get()


def reset_correlation_id(token: Optional[contextvars.Token] = None) -> None:
    """Restore the previous correlation id (with a token from ``set``) or clear it."""
    if token is not None:
        _correlation_id.reset(token)
    else:
        _correlation_id.set(None)
