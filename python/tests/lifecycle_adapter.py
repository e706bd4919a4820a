"""A test adapter whose cleanup leaves a marker file (path from MARKER_FILE)."""

import os
import time

from snakepit_bridge import BaseAdapter, tool


class LifecycleAdapter(BaseAdapter):
    async def initialize(self):
        self.initialized = True

    async def cleanup(self):
        with open(os.environ["MARKER_FILE"], "w") as f:
            f.write("cleaned")

    @tool
    def slow(self, ms: int) -> str:
        time.sleep(ms / 1000)
        return "done"

    @tool
    def span(self, ms: int) -> list:
        """Sleep and report when this call ran (monotonic start and end)."""
        start = time.monotonic()
        time.sleep(ms / 1000)
        return [start, time.monotonic()]

    @tool
    def remaining(self) -> list:
        """The caller's deadline as this tool sees it."""
        return [self.session_context.session_id, self.session_context.time_remaining()]

    @tool
    async def async_add(self, a: int, b: int) -> int:
        return a + b

    @tool
    async def countdown(self, n: int = 3):
        for i in range(n, 0, -1):
            yield i

    @tool
    def broken_stream(self):
        yield 1
        raise RuntimeError("stream broke")
