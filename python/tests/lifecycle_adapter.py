"""A test adapter whose cleanup leaves a marker file (path from MARKER_FILE)."""

import os
import time

from snakepit_bridge import BaseAdapter, tool


def write_marker(text: str) -> None:
    """Write MARKER_FILE atomically: tests poll for the file and then read it, so it must never
    exist half-written."""
    path = os.environ["MARKER_FILE"]
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class LifecycleAdapter(BaseAdapter):
    async def initialize(self):
        self.initialized = True

    async def cleanup(self):
        write_marker("cleaned")

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
    def big(self, n: int) -> str:
        """A string of n bytes (a large response from a small request)."""
        return "x" * n

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


class HostCallingAdapter(BaseAdapter):
    """Calls back into the host (the in-test fake host server)."""

    @tool
    def ask_host(self, name: str, args: dict) -> object:
        return self.session_context.call_elixir_tool(name, args)

    @tool
    async def ask_host_async(self, name: str, args: dict) -> object:
        return await self.session_context.call_elixir_tool_async(name, args)

    @tool
    def traced(self, n: int = 2) -> int:
        from snakepit_bridge import telemetry

        with telemetry.span("traced.work", {"n": n}):
            telemetry.emit("traced.custom", {"n": n, "ratio": 0.5}, {"who": "test"})
        return n


class BrokenInitAdapter(BaseAdapter):
    def initialize(self):
        raise RuntimeError("no model file")


class GeneratorCloseAdapter(BaseAdapter):
    """A streaming tool that records when its generator is closed early."""

    @tool
    def endless(self, delay_ms: int = 20):
        try:
            i = 0
            while True:
                i += 1
                yield {"i": i}
                time.sleep(delay_ms / 1000)
        finally:
            write_marker("closed")

    @tool
    def wait_for_cancel(self, timeout_ms: int = 20000) -> str:
        """Poll the context's cancelled flag; write "cancelled" to MARKER_FILE when it is set."""
        ctx = self.session_context
        give_up = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < give_up:
            if ctx.cancelled:
                write_marker("cancelled")
                return "cancelled"
            time.sleep(0.01)
        return "not cancelled"

    @tool
    def envelope(self):
        yield {"data": "first", "metadata": {"k": "v"}}
        yield {"data": {"last": True}, "is_final": True}
        yield "never sent"
