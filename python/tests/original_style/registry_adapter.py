"""Fixture adapters written the way the original Snakepit's adapters are written.

``RegistryAdapter`` keeps a registry of handler functions and serves every tool through
``execute_tool(tool_name, arguments, context)``; ``PlainAdapter`` is a plain class with
``execute_tool`` that does not subclass ``BaseAdapter`` at all (the original's template).
"""

import asyncio
import datetime
import threading

import time

from snakepit_bridge.base_adapter import BaseAdapter, tool
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method
from snakepit_bridge.session_context import SessionContext


class InventoryError(Exception):
    """A domain error with its own type, raised by the ``reserve`` tool."""


def _ping(context, arguments):
    return {"status": "ok", "message": "pong"}


def _echo(context, arguments):
    return arguments


def _add(context, arguments):
    return arguments["a"] + arguments["b"]


def _count_up(context, arguments):
    # A plain function returning a generator: the pattern of tools that delegate to handlers.
    n = int(arguments.get("n", 3))
    return ({"i": i} for i in range(1, n + 1))


def _spell(context, arguments):
    # A plain function returning an iterator that is not a generator.
    return iter(list(str(arguments.get("word", "abc"))))


def _reserve(context, arguments):
    raise InventoryError(f"only 0 of {arguments.get('qty', 1)} items left")


def _oom(context, arguments):
    raise RuntimeError(
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity; 512.00 MiB free)"
    )


def _shapes(context, arguments):
    raise ValueError("shape mismatch: expected [3, 224, 224], got [3, 256, 256] in conv2d")


def _needs_package(context, arguments):
    import snakepit_fixture_missing_package  # noqa: F401


def _odd_values(context, arguments):
    return {
        "nan": float("nan"),
        "inf": float("inf"),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "tags": {"b", "a"},
    }


class _SessionStore:
    """Per-session state on this worker (calls of one session stick to one worker)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}


_STORE = _SessionStore()


def _remember(context, arguments):
    with _STORE.lock:
        _STORE.values.setdefault(context.session_id, {})[arguments["key"]] = arguments["value"]
    return {"session_id": context.session_id, "stored": arguments["key"]}


def _recall(context, arguments):
    with _STORE.lock:
        found = _STORE.values.get(context.session_id, {}).get(arguments["key"])
    return {"session_id": context.session_id, "value": found}


HANDLERS = {
    "ping": _ping,
    "echo": _echo,
    "add": _add,
    "count_up": _count_up,
    "spell": _spell,
    "reserve": _reserve,
    "remember": _remember,
    "recall": _recall,
    "oom": _oom,
    "shapes": _shapes,
    "needs_package": _needs_package,
    "odd_values": _odd_values,
}


class RegistryAdapter(BaseAdapter):
    """Tools live in ``HANDLERS``; ``execute_tool`` looks them up by name."""

    def __init__(self):
        super().__init__()
        self.session_context = None
        self.calls = 0

    def set_session_context(self, session_context):
        self.session_context = session_context

    def initialize(self):
        self.ready = True

    def execute_tool(self, tool_name, arguments, context):
        self.calls += 1
        if not isinstance(context, SessionContext):
            raise TypeError(f"context is a {type(context).__name__}, not a SessionContext")
        handler = HANDLERS.get(tool_name)
        if handler is None and tool_name in self.get_tools():
            return getattr(self, tool_name)(**arguments)
        if handler is None:
            raise ValueError(f"Unknown tool: {tool_name}")
        return handler(context, arguments)

    @tool(description="Decorated tool next to the registry")
    def decorated(self, x: int = 1) -> dict:
        return {"decorated": x}


class PlainAdapter:
    """The original's template: no base class, only ``execute_tool``."""

    def __init__(self):
        self.session_context = None

    def set_session_context(self, session_context):
        self.session_context = session_context

    def execute_tool(self, tool_name, arguments, context):
        if tool_name == "ping":
            return {"status": "ok", "adapter": "plain"}
        if tool_name == "countdown":
            return (i for i in range(int(arguments.get("n", 3)), 0, -1))
        raise ValueError(f"Unknown tool: {tool_name}")


class AsyncPlainAdapter:
    """A plain adapter whose ``execute_tool`` is a coroutine (async tools run on the main loop)."""

    async def execute_tool(self, tool_name, arguments, context):
        await asyncio.sleep(0)
        if tool_name == "ping":
            on_main = threading.current_thread() is threading.main_thread()
            return {"status": "ok", "adapter": "async", "main_thread": on_main}
        if tool_name == "countdown":
            return _countdown(int(arguments.get("n", 3)))
        raise ValueError(f"Unknown tool: {tool_name}")


async def _countdown(n):
    for i in range(n, 0, -1):
        await asyncio.sleep(0)
        yield i


class SharedCounterAdapter(ThreadSafeAdapter):
    """A thread-profile adapter: one tool unguarded, one serialised by ``@thread_safe_method``."""

    __thread_safe__ = True

    def __init__(self):
        super().__init__()
        self.count = 0

    @tool
    def slow_bump(self, delay: float = 0.3) -> int:
        time.sleep(delay)
        with self.acquire_lock():
            self.count += 1
            return self.count

    @thread_safe_method
    @tool
    def guarded_bump(self, delay: float = 0.3) -> int:
        time.sleep(delay)
        self.count += 1
        return self.count
