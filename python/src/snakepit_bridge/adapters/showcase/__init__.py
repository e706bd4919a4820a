"""The bundled showcase adapter: small tools that exercise every path of the bridge."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, Iterator, Optional

from snakepit_bridge import BaseAdapter, tool


class ShowcaseAdapter(BaseAdapter):
    """Demonstration tools: ping, echo, add, sleep, fail, streaming, process info, bytes."""

    def __init__(self) -> None:
        self.calls = 0
        self.flaky_attempts: Dict[str, int] = {}

    def initialize(self) -> None:
        self.started_at = time.time()

    @tool(description="Liveness check.")
    def ping(self) -> Dict[str, Any]:
        return {"status": "ok", "message": "pong", "timestamp": time.time()}

    @tool
    def noop(self) -> None:
        """Do nothing (for measuring call overhead)."""
        return None

    @tool
    def echo(self, **kwargs: Any) -> Dict[str, Any]:
        """Return the keyword arguments unchanged."""
        return kwargs

    @tool
    def array_echo(self, x: Any) -> Any:
        """Return the array argument itself (a zero-copy round trip when it came through shared memory)."""
        return x

    @tool
    def array_scale(self, x: Any, factor: float = 2.0) -> Any:
        """Return a new array ``x * factor`` (large results go back through the worker's shared memory)."""
        return x * factor

    @tool(supports_streaming=True)
    def array_chunk_sums(self, x: Any, parts: int = 4) -> Iterator[Dict[str, Any]]:
        """Stream the sums of ``parts`` consecutive slices of a 1-d array argument."""
        step = max(1, -(-len(x) // parts))
        for start in range(0, len(x), step):
            yield {"start": start, "sum": float(x[start:start + step].sum())}

    @tool
    def array_copy(self, x: Any) -> Any:
        """Return a copy of the array argument (a new result the worker writes)."""
        return x.copy()

    @tool
    def array_transpose(self, x: Any) -> Any:
        """Return ``x.T``, a non-contiguous view (the bridge makes it contiguous on the way out)."""
        return x.T

    @tool
    def array_hold(self, x: Any, ms: int = 1000) -> int:
        """Sleep ``ms`` milliseconds holding the array argument, then return its length in bytes."""
        time.sleep(ms / 1000.0)
        return memoryview(x).nbytes

    @tool
    def array_info(self, x: Any) -> Dict[str, Any]:
        """Describe an array argument: Python type, dtype, shape, writability, DLPack support, sum."""
        info: Dict[str, Any] = {"type": type(x).__name__}
        if hasattr(x, "dtype") and hasattr(x, "shape"):
            info.update(dtype=str(x.dtype), shape=list(x.shape), writable=bool(getattr(x, "flags", {"WRITEABLE": False})["WRITEABLE"]))
            try:
                x.__dlpack__()
                info["dlpack"] = True
            except (AttributeError, BufferError, TypeError):
                info["dlpack"] = False
            info["sum"] = x.sum().item() if x.size else 0
        elif isinstance(x, memoryview):
            info.update(format=x.format, shape=list(x.shape or ()), nbytes=x.nbytes, sum=sum(x.cast("B")) if x.nbytes < 1 << 20 else None)
        elif hasattr(x, "num_rows"):
            info.update(num_rows=x.num_rows, columns=list(x.column_names))
        return info

    @tool
    def zero_copy_stats(self) -> Dict[str, int]:
        """Result regions of this worker's shared memory that the host has not released."""
        from snakepit_bridge import _shm

        return {"regions_in_use": _shm.ARENA.regions_in_use(), "segments": len(_shm.ARENA.segments)}

    @tool
    def add(self, a: float, b: float) -> float:
        """Add two numbers (an integer when both are integers)."""
        return a + b

    @tool
    def sleep(self, ms: int) -> Dict[str, int]:
        """Sleep for `ms` milliseconds."""
        time.sleep(ms / 1000.0)
        return {"slept_ms": ms}

    @tool
    def emit_events(self, n: int = 1000, name: str = "showcase.burst") -> Dict[str, Any]:
        """Emit `n` telemetry events in a burst; returns how many the queue accepted."""
        from snakepit_bridge import telemetry

        started = time.perf_counter_ns()
        accepted = sum(1 for i in range(n) if telemetry.emit(name, {"i": i}))
        return {"accepted": accepted, "elapsed_ns": time.perf_counter_ns() - started}

    @tool
    def fail(self, message: str = "boom") -> None:
        """Raise ValueError(message)."""
        raise ValueError(message)

    @tool(description="Yield `steps` progress updates, `delay_ms` apart.", supports_streaming=True)
    def stream_progress(self, steps: int = 5, delay_ms: int = 100) -> Iterator[Dict[str, Any]]:
        for i in range(1, steps + 1):
            if i > 1:
                time.sleep(delay_ms / 1000.0)
            yield {"step": i, "total": steps, "progress": i / steps, "produced_at_ns": time.time_ns()}

    @tool
    def flaky(self, key: str, failures: int = 1) -> Dict[str, int]:
        """Raise ConnectionError for the first `failures` calls with this key, then succeed."""
        attempt = self.flaky_attempts.get(key, 0) + 1
        self.flaky_attempts[key] = attempt
        if attempt <= failures:
            raise ConnectionError(f"flaky failure {attempt} of {failures} for {key!r}")
        return {"attempts": attempt}

    @tool
    def call_host(self, tool: str, args: Dict[str, Any]) -> Any:
        """Call a host tool through the bridge and return its result."""
        return self.session_context.call_elixir_tool(tool, args)

    @tool
    def process_info(self) -> Dict[str, Any]:
        """Describe the worker process."""
        argv = sys.argv
        def flag(name: str) -> Optional[str]:
            return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "pgid": os.getpgid(0),
            "python_version": sys.version.split()[0],
            "executable": sys.executable,
            "run_id": flag("--snakepit-run-id") or flag("--run-id"),
            "worker_id": flag("--worker-id"),
        }

    @tool
    def echo_bytes(self, data: bytes) -> bytes:
        """Return the bytes unchanged (binary path)."""
        return data

    @tool
    def adapter_info(self) -> Dict[str, Any]:
        """Name and tools of this adapter."""
        return {"name": type(self).__name__, "tools": sorted(self.get_tools())}
