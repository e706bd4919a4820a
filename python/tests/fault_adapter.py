"""A test adapter for fault tests: crashes on demand, child processes, session state and cleanup.

Session cleanups are appended to the file named by SESSION_LOG (one ``cleanup <id>`` line each),
so a test on the host side can see that ``CleanupSession`` reached Python.
"""

import asyncio
import ctypes
import faulthandler
import os
import subprocess
import time

from snakepit_bridge import BaseAdapter, tool


class FaultAdapter(BaseAdapter):
    def __init__(self):
        super().__init__()
        self.state = {}

    @tool
    def whoami(self) -> int:
        """This worker's pid."""
        return os.getpid()

    @tool
    def work(self, ms: int = 0) -> int:
        """Sleep ``ms`` and return the pid (an idempotent call)."""
        time.sleep(ms / 1000)
        return os.getpid()

    @tool
    def crash(self, code: int = 3) -> None:
        """End the process at once with exit code ``code``."""
        os._exit(code)

    @tool
    def crash_once(self, marker: str) -> int:
        """Crash (exit 3) if ``marker`` does not exist yet (creating it); else return the pid."""
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return os.getpid()
        os.close(fd)
        os._exit(3)

    @tool
    def segfault(self) -> None:
        """Die by SIGSEGV: a real invalid read, so no reply can race the death."""
        faulthandler.disable()
        ctypes.string_at(0)

    @tool
    def spawn_sleeper(self, detach: bool = False) -> int:
        """Start ``sleep 1000`` and return its pid: in this worker's process group, or in a
        session of its own when ``detach`` (out of reach of a group kill)."""
        return subprocess.Popen(["sleep", "1000"], start_new_session=detach).pid

    @tool
    def span(self, ms: int = 0) -> list:
        """Sleep ``ms``; report when this call ran (monotonic start and end)."""
        start = time.monotonic()
        time.sleep(ms / 1000)
        return [start, time.monotonic()]

    @tool
    async def async_span(self, ms: int = 0) -> list:
        """Like ``span``, awaiting instead of sleeping (another call could run meanwhile)."""
        start = time.monotonic()
        await asyncio.sleep(ms / 1000)
        return [start, time.monotonic()]

    @tool(supports_streaming=True)
    def span_stream(self, ms: int = 0):
        """Two chunks ``ms`` apart: the start, then the end of this call."""
        yield time.monotonic()
        time.sleep(ms / 1000)
        yield time.monotonic()

    @tool
    def hold_sleeper(self, detach: bool = False, ms: int = 600000) -> int:
        """Start ``sleep 1000`` like ``spawn_sleeper``, then keep the call running ``ms``."""
        pid = self.spawn_sleeper(detach)
        time.sleep(ms / 1000)
        return pid

    @tool(supports_streaming=True)
    def ticks(self, count: int = 1000, delay_ms: int = 50):
        """Yield ``count`` numbers, ``delay_ms`` apart."""
        for i in range(count):
            yield {"tick": i, "pid": os.getpid()}
            time.sleep(delay_ms / 1000)

    @tool
    def remember(self, key: str, value: str) -> int:
        """Store a value under ``key`` in this worker; returns the pid."""
        self.state[key] = value
        return os.getpid()

    @tool
    def recall(self, key: str) -> str:
        """The value stored under ``key`` in this worker, or "" when this worker has none."""
        return self.state.get(key, "")

    def cleanup_session(self, session_id: str) -> None:
        """Called by the worker when the host sends CleanupSession."""
        log = os.environ.get("SESSION_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"cleanup {session_id}\n")
