"""Checking tool arguments against the tool's type annotations before the call.

Arguments arrive as JSON values (``str``, ``int``, ``float``, ``bool``, ``None``, ``list``,
``dict``) or as ``bytes`` (binary parameters). Each argument whose parameter is annotated with
one of the types below is checked; a mismatch is a problem naming the parameter, the expected
type and what arrived. Annotations this module does not understand (classes of your own,
numpy arrays, protocols, unresolvable forward references) are not checked.

Understood: ``Any``, ``int`` (not ``bool``), ``float`` (ints accepted), ``bool``, ``str``,
``bytes``, ``None``, ``list``/``List[X]``/``Sequence[X]``/``tuple``, ``dict``/``Dict[K, V]``/
``Mapping[K, V]``, ``Optional[X]``, ``Union[...]``/``X | Y`` and ``Literal[...]``. A parameter
whose default is ``None`` also accepts ``None``.
"""

from __future__ import annotations

import collections.abc
import inspect
import sys
import typing
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

_NOT_CHECKED = object()
_UNION_TYPES: Tuple[Any, ...] = (typing.Union,)
if sys.version_info >= (3, 10):
    import types

    _UNION_TYPES = (typing.Union, types.UnionType)

_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _hints(func: Callable[..., Any]) -> Dict[str, Any]:
    cached: Optional[Dict[str, Any]] = getattr(func, "__snakepit_hints__", None)
    if cached is not None:
        return cached
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - one unresolvable annotation: resolve the others one by one
        hints = _hints_one_by_one(func)
    target: Any = getattr(func, "__func__", func)
    try:
        target.__snakepit_hints__ = hints
    except (AttributeError, TypeError):
        pass
    return hints


def _hints_one_by_one(func: Callable[..., Any]) -> Dict[str, Any]:
    hints: Dict[str, Any] = {}
    namespace = getattr(getattr(func, "__func__", func), "__globals__", {})
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return hints
    for p in params:
        annotation = p.annotation
        if annotation is inspect.Parameter.empty:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(namespace), {"typing": typing})  # noqa: S307 - the tool's own annotation
            except Exception:  # noqa: BLE001 - unresolvable: not checked
                continue
        hints[p.name] = annotation
    return hints


def _describe(annotation: Any) -> str:
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}.get(
        type(value), type(value).__name__
    )


def _matches(value: Any, annotation: Any) -> Any:
    """True or False when the annotation is understood, ``_NOT_CHECKED`` otherwise."""
    if annotation is Any or annotation is object or annotation is inspect.Parameter.empty:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in _UNION_TYPES:
        results = [_matches(value, a) for a in args]
        if any(r is True for r in results):
            return True
        return _NOT_CHECKED if any(r is _NOT_CHECKED for r in results) else False
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation is bytes:
        return isinstance(value, (bytes, bytearray))
    container = origin or annotation
    if container in _MAPPINGS:
        if not isinstance(value, dict):
            return False
        if len(args) == 2:
            return _all_match(value.values(), args[1])
        return True
    if container in _SEQUENCES:
        if not isinstance(value, list):
            return False
        if container is tuple:
            return True  # tuple[int, str] and tuple[int, ...] are left to the tool
        if len(args) == 1:
            return _all_match(value, args[0])
        return True
    return _NOT_CHECKED


def _all_match(values: Iterable[Any], annotation: Any) -> Any:
    for v in values:
        r = _matches(v, annotation)
        if r is not True:
            return r
    return True


class ArgumentChecks:
    """The annotation checks of one tool, worked out once when the tool is loaded.

    Only parameters with an annotation this module may understand are kept, so a tool without
    annotations (or annotated only with ``Any``) costs one empty-dict test per call.
    """

    __slots__ = ("checks",)

    def __init__(self, func: Callable[..., Any]) -> None:
        self.checks: Dict[str, Tuple[Any, bool]] = {}
        hints = _hints(func)
        if not hints:
            return
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            return
        for name, param in params.items():
            annotation = hints.get(name, inspect.Parameter.empty)
            if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
                continue
            self.checks[name] = (annotation, param.default is None)

    def problems(self, kwargs: Dict[str, Any]) -> List[str]:
        """Return one problem per argument whose value does not match its annotation."""
        checks = self.checks
        if not checks:
            return []
        problems = []
        for name, value in kwargs.items():
            check = checks.get(name)
            if check is None:
                continue
            annotation, none_default = check
            if value is None and none_default:
                continue
            if _matches(value, annotation) is False:
                shown = repr(value)
                if len(shown) > 40:
                    shown = shown[:37] + "..."
                problems.append(f"argument '{name}' must be {_describe(annotation)}, got {_kind(value)} {shown}")
        return problems


def argument_problems(func: Callable[..., Any], kwargs: Dict[str, Any]) -> List[str]:
    """Return one problem per argument whose value does not match its parameter's annotation.

    Works the checks out on every call; the dispatcher keeps an :class:`ArgumentChecks` per tool.
    """
    return ArgumentChecks(func).problems(kwargs)
