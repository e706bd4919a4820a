"""The adapter API: ``BaseAdapter``, the ``@tool`` decorator, parameter specs and ``StreamChunk``."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TypeVar, Union, overload

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_ATTR = "__snakepit_tool__"


@dataclass
class ToolMetadata:
    """What ``@tool`` attaches to a method (registration happens when the adapter is loaded)."""

    description: Optional[str] = None
    supports_streaming: bool = False
    required_variables: List[str] = field(default_factory=list)


@dataclass
class ParameterSpec:
    """One parameter of a tool, inferred from its signature and type hints."""

    name: str
    type: str
    required: bool
    default: Any = None
    description: str = ""


@dataclass
class ToolSpec:
    """A registered tool: its callable, description and parameters."""

    name: str
    func: Callable[..., Any]
    description: str
    parameters: List[ParameterSpec]
    supports_streaming: bool
    required_variables: List[str]
    accepts_any_kwargs: bool

    @property
    def is_generator(self) -> bool:
        return inspect.isgeneratorfunction(self.func) or inspect.isasyncgenfunction(self.func)


@dataclass
class StreamChunk:
    """One chunk of a streaming tool's output, with explicit control of the final marker."""

    data: Any
    is_final: bool = False
    metadata: Optional[Dict[str, str]] = None


@overload
def tool(func: F) -> F: ...


@overload
def tool(
    func: Optional[str] = None,
    *,
    description: Optional[str] = None,
    supports_streaming: bool = False,
    required_variables: Optional[List[str]] = None,
) -> Callable[[F], F]: ...


def tool(
    func: Union[F, str, None] = None,
    *,
    description: Optional[str] = None,
    supports_streaming: bool = False,
    required_variables: Optional[List[str]] = None,
) -> Union[F, Callable[[F], F]]:
    """Mark an adapter method as a tool. Works bare (``@tool``) and with options.

    The description defaults to the docstring. Generator functions are streaming tools.
    ``@tool("text")`` (the original's positional description) works too.
    """
    if isinstance(func, str):
        description, func = description or func, None

    def attach(f: F) -> F:
        setattr(
            f,
            _TOOL_ATTR,
            ToolMetadata(
                description=description,
                supports_streaming=supports_streaming
                or inspect.isgeneratorfunction(f)
                or inspect.isasyncgenfunction(f),
                required_variables=list(required_variables or []),
            ),
        )
        return f

    if func is not None:
        return attach(func)
    return attach


def _type_name(annotation: Any) -> str:
    """Map a type hint to the protocol's parameter type name."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return _type_name(rest[0]) if len(rest) == 1 else "any"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "float"
    if annotation is str:
        return "string"
    if annotation in (bytes, bytearray):
        return "binary"
    if annotation is dict or origin is dict:
        return "map"
    if annotation is list or origin is list or origin is tuple:
        if args and all(a is float for a in args):
            return "embedding"
        return "list"
    # numpy is never imported: ndarray and numpy.typing.NDArray[...] are recognised by name.
    if "ndarray" in (getattr(annotation, "__name__", ""), getattr(origin, "__name__", "")):
        return "tensor"
    return "any"


def build_tool_spec(name: str, func: Callable[..., Any], meta: ToolMetadata) -> ToolSpec:
    """Build the spec of one bound tool method from its signature and hints."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    params: List[ParameterSpec] = []
    any_kwargs = False
    for p in inspect.signature(func).parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            any_kwargs = True
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        annotation = hints.get(p.name, p.annotation)
        required = p.default is inspect.Parameter.empty
        params.append(
            ParameterSpec(
                name=p.name,
                type=_type_name(annotation),
                required=required,
                default=None if required else p.default,
            )
        )
    description = meta.description or inspect.getdoc(func) or ""
    return ToolSpec(
        name=name,
        func=func,
        description=description.strip(),
        parameters=params,
        supports_streaming=meta.supports_streaming,
        required_variables=meta.required_variables,
        accepts_any_kwargs=any_kwargs,
    )


class BaseAdapter:
    """Base class of adapters: subclasses define tools with ``@tool``.

    The worker creates one instance per process, calls ``initialize()`` (sync or async) once
    before the first call, ``set_session_context(ctx)`` before each call, and ``cleanup()``
    (sync or async) at shutdown.
    """

    session_context: Any = None

    def initialize(self) -> Any:
        """Prepare the adapter (load models, open connections). May be ``async``."""
        return None

    def cleanup(self) -> Any:
        """Release what ``initialize`` acquired. May be ``async``."""
        return None

    def set_session_context(self, ctx: Any) -> None:
        """Receive the context of the call about to run."""
        self.session_context = ctx

    def call_tool(self, tool_name: str, **kwargs: Any) -> Any:
        """Call one of the adapter's methods by name (the original's ``call_tool``)."""
        method = getattr(self, tool_name, None)
        if method is None:
            raise AttributeError(f"Tool '{tool_name}' not found in {type(self).__name__}")
        if not callable(method):
            raise TypeError(f"'{tool_name}' is not a callable tool")
        return method(**kwargs)

    def register_with_session(self, session_id: str, stub: Any) -> List[str]:
        """Announce the adapter's tools to the host through ``stub`` (``RegisterTools``).

        Returns the names the host accepted; an empty list when it refused or the call failed
        (logged, like the original). Our server registers once at start and does not need it.
        """
        from ._registration import register_tools

        return register_tools(self, session_id, stub)

    async def register_with_session_async(self, session_id: str, stub: Any) -> List[str]:
        """``register_with_session`` for a ``grpc.aio`` stub."""
        from ._registration import register_tools_async

        return await register_tools_async(self, session_id, stub)

    def get_tools(self) -> Dict[str, ToolSpec]:
        """Return the adapter's tools by name (the ``@tool`` methods of its class)."""
        tools: Dict[str, ToolSpec] = {}
        for name in dir(type(self)):
            attr = getattr(type(self), name, None)
            meta = getattr(attr, _TOOL_ATTR, None)
            if isinstance(meta, ToolMetadata):
                tools[name] = build_tool_spec(name, getattr(self, name), meta)
        return tools
