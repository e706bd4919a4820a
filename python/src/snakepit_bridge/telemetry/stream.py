"""The bounded, non-blocking event queue that the worker's ``StreamTelemetry`` RPC drains.

Tools are producers and never wait: when the queue holds ``BUFFER_CAPACITY`` events, a new
event is dropped and counted (``dropped``, and a ``python.telemetry.dropped`` event with the
count since the last report goes to the host). The host's TelemetryControl messages (toggle,
sampling by glob, allow/deny globs) are applied here, at runtime.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fnmatch
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Iterable, List, Optional, Tuple

__all__ = ["BUFFER_CAPACITY", "TelemetryBuffer", "TelemetryEventRecord"]

BUFFER_CAPACITY = 1024

DROPPED_EVENT = "python.telemetry.dropped"


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

    @property
    def admits_all(self) -> bool:
        return self.enabled and self.sampling_rate >= 1.0 and not self.allow and not self.deny

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


_Raw = Tuple[str, Dict[str, Any], Dict[str, str], int, str]


class TelemetryBuffer:
    """The bounded, thread-safe event queue shared by tools (producers) and the stream (consumer)."""

    def __init__(self, capacity: int = BUFFER_CAPACITY) -> None:
        self._lock = threading.Lock()
        self._events: Deque[_Raw] = collections.deque()
        self._capacity = capacity
        self._waiters: List[Tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.controls = _Controls()
        self._admits_all = True
        #: False while the host has switched telemetry off: ``emit`` returns at once then.
        self.recording = True
        self.dropped = 0
        self._reported = 0

    def push(self, event: TelemetryEventRecord) -> bool:
        """Buffer an event; returns False when it was filtered out or the buffer is full."""
        return self.push_raw(event.name, event.measurements, event.metadata, event.timestamp_ns, event.correlation_id)

    def push_raw(
        self, name: str, measurements: Dict[str, Any], metadata: Dict[str, str], timestamp_ns: int, correlation_id: str
    ) -> bool:
        """Buffer an event given as fields (the hot path of ``emit``)."""
        if not self._admits_all and not self.controls.admits(name):
            return False
        with self._lock:
            if len(self._events) >= self._capacity:
                self.dropped += 1
                return False
            self._events.append((name, measurements, metadata, timestamp_ns, correlation_id))
            if not self._waiters:
                return True
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
                    return TelemetryEventRecord(*self._events.popleft())
                self._waiters.append((loop, ready))
            await ready.wait()

    def take_dropped(self) -> int:
        """The number of events dropped since the last call (for the host's drop counter)."""
        with self._lock:
            n, self._reported = self.dropped - self._reported, self.dropped
        return n

    def apply_control(
        self,
        *,
        enabled: Optional[bool] = None,
        sampling_rate: Optional[float] = None,
        patterns: Optional[Iterable[str]] = None,
        allow: Optional[Iterable[str]] = None,
        deny: Optional[Iterable[str]] = None,
    ) -> None:
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
            self._admits_all = c.admits_all
            self.recording = c.enabled

    def drain(self) -> List[TelemetryEventRecord]:
        """Take every buffered event (tests and shutdown)."""
        with self._lock:
            events = [TelemetryEventRecord(*e) for e in self._events]
            self._events.clear()
        return events

    def __len__(self) -> int:
        return len(self._events)


def dropped_record(count: int, timestamp_ns: int) -> Optional[TelemetryEventRecord]:
    """The event that reports ``count`` drops to the host (None when there were none)."""
    if count <= 0:
        return None
    return TelemetryEventRecord(DROPPED_EVENT, {"dropped": count}, {}, timestamp_ns)
