"""Dispatch rules of the original worker server: ``execute_tool``, plain adapters, returned iterators.

- An adapter that defines ``execute_tool(tool_name, arguments, context)`` gets every call
  through it (``context`` is the call's ``SessionContext``, the one ``set_session_context``
  received); ``@tool`` methods serve the calls otherwise.
- An adapter needs no base class: ``get_tools``, ``set_session_context``, ``initialize`` and
  ``cleanup`` are used when present.
- A tool that *returns* a generator, an iterator or an async iterator streams its items (and
  a unary call gets them as a list), like a generator tool does.
"""

from __future__ import annotations

import contextvars
import inspect
from typing import Any, Callable, Dict, Optional

from . import thread_safety_checker
from ._adapter import ParameterSpec, ToolSpec

_CONTEXT: contextvars.ContextVar[Any] = contextvars.ContextVar("snakepit_session_context", default=None)


def adapter_tools(adapter: Any) -> Dict[str, ToolSpec]:
    """The ``@tool`` methods of an adapter; ``{}`` for a plain class without ``get_tools``."""
    get_tools = getattr(adapter, "get_tools", None)
    tools = get_tools() if callable(get_tools) else {}
    return tools if isinstance(tools, dict) else {}


def context_setter(adapter: Any) -> Callable[[Any], None]:
    """What hands each call's context to ``adapter``, chosen once when the adapter is loaded.

    The adapter's ``set_session_context`` hook, or else its ``session_context`` attribute; for
    an adapter with ``execute_tool`` the context also goes to the call's context variable,
    which ``execute_tool``'s ``context`` argument reads (so concurrent calls keep their own).
    """
    hook = getattr(adapter, "set_session_context", None)
    if not callable(hook):

        def hook(ctx: Any) -> None:
            try:
                adapter.session_context = ctx
            except AttributeError:
                pass

    if not has_execute_tool(adapter):
        return hook
    plain_hook = hook

    def set_both(ctx: Any) -> None:
        _CONTEXT.set(ctx)
        plain_hook(ctx)

    return set_both


def set_session_context(adapter: Any, ctx: Any) -> None:
    """Hand one context to the adapter and to ``execute_tool`` (see :func:`context_setter`)."""
    context_setter(adapter)(ctx)


def current_context() -> Any:
    """The ``SessionContext`` of the call running in this context (thread or task)."""
    return _CONTEXT.get()


def has_execute_tool(adapter: Any) -> bool:
    """Whether the adapter dispatches its own calls (``execute_tool``)."""
    return callable(getattr(adapter, "execute_tool", None))


def execute_tool_spec(adapter: Any, name: str, known: Optional[ToolSpec] = None) -> ToolSpec:
    """A tool spec whose function calls ``adapter.execute_tool(tool_name=name, ...)``.

    Arguments are not checked against a signature (the adapter's handler owns them); the
    description and streaming flag come from a ``@tool`` method of that name when there is one.
    """
    execute = adapter.execute_tool
    func: Callable[..., Any]
    if inspect.iscoroutinefunction(execute):

        async def execute_async(**arguments: Any) -> Any:
            return await execute(tool_name=name, arguments=arguments, context=_CONTEXT.get())

        func = execute_async
    else:

        def execute_sync(**arguments: Any) -> Any:
            return execute(tool_name=name, arguments=arguments, context=_CONTEXT.get())

        func = execute_sync

    params = list(known.parameters) if known else []
    return ToolSpec(
        name=name,
        func=func,
        description=known.description if known else f"{type(adapter).__name__}.execute_tool('{name}')",
        parameters=[ParameterSpec(p.name, p.type, False, p.default, p.description) for p in params],
        supports_streaming=known.supports_streaming if known else False,
        required_variables=list(known.required_variables) if known else [],
        accepts_any_kwargs=True,
    )


# Results that are never streamed: the check a unary call makes of every result stops here.
PLAIN_RESULTS = (dict, list, str, int, float, type(None), bytes, tuple, bytearray, memoryview)


def is_result_iterator(value: Any) -> bool:
    """Whether a tool's return value is something to stream (generator, iterator, async iterator)."""
    if isinstance(value, PLAIN_RESULTS):
        return False
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        return True
    return hasattr(value, "__anext__") or (hasattr(value, "__next__") and hasattr(value, "__iter__"))


def checked(tool: ToolSpec) -> Callable[..., Any]:
    """``tool.func``, run through the global thread-safety checker when it is enabled.

    ``@thread_safe_method`` functions (``__thread_safe__``) are serialised, so only recorded.
    """
    checker = thread_safety_checker.get_global_checker()
    func = tool.func
    if not checker.enabled or inspect.iscoroutinefunction(func):
        return func
    serialized = bool(getattr(func, "__thread_safe__", False))

    def guarded(**kwargs: Any) -> Any:
        with checker.guard(tool.name, serialized=serialized):
            return func(**kwargs)

    return guarded
