"""Value encoding of the bridge protocol: JSON inside ``google.protobuf.Any``, error objects."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import math
import pathlib
import sys
import traceback
import uuid
from types import ModuleType
from typing import Any, Dict, Iterable, Mapping, Optional, Set, Tuple

from google.protobuf import any_pb2, wrappers_pb2

_orjson: Optional[ModuleType]
try:  # orjson encodes and decodes several times faster; the standard library is the fallback
    import orjson

    _orjson = orjson
    _ORJSON_OPTIONS = (
        orjson.OPT_NON_STR_KEYS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )
except ImportError:  # pragma: no cover - orjson is a dependency, but optional at run time
    _orjson = None

TYPE_URL_PREFIX = "type.googleapis.com/snakepit."


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    return "map"


def to_jsonable(value: Any, _depth: int = 0, _active: Optional[Set[int]] = None) -> Any:
    """Convert a value to plain JSON data by the graceful serialization rules.

    Special floats become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; datetimes,
    dates and times ISO 8601 strings; ``timedelta`` seconds; ``Decimal``, ``UUID`` and paths
    their text; enums their value; sets sorted lists; tuples lists; nested bytes base64 text;
    numpy scalars and arrays their Python values (``item()``/``tolist()``); dataclasses their
    fields; mapping keys strings; a container met again inside itself (a cycle)
    ``{"__type__": ..., "__repr__": "<circular reference>"}``. Anything else becomes
    ``{"__type__": "module.Class", "__repr__": repr(value)}``. The one failure is nesting
    beyond ``MAX_VALUE_DEPTH`` (512, the host's limit): ``RecursionError``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return float(value)
    if _depth >= MAX_VALUE_DEPTH:
        raise RecursionError(f"maximum recursion depth exceeded: the value nests deeper than {MAX_VALUE_DEPTH} levels")
    nested = _depth + 1
    if isinstance(value, (dict, list, tuple, set, frozenset)) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        active = _active if _active is not None else set()
        if id(value) in active:
            return _opaque(value, "<circular reference>")
        active.add(id(value))
        try:
            # Loops, not comprehensions: one frame per level.
            if isinstance(value, dict):
                out: Dict[str, Any] = {}
                for k, v in value.items():
                    out[_key(k)] = to_jsonable(v, nested, active)
                return out
            if isinstance(value, (list, tuple, set, frozenset)):
                items = []
                for v in value:
                    items.append(to_jsonable(v, nested, active))
                if isinstance(value, (list, tuple)):
                    return items
                try:
                    return sorted(items)
                except TypeError:
                    return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
            fields: Dict[str, Any] = {}
            for f in dataclasses.fields(value):
                fields[f.name] = to_jsonable(getattr(value, f.name), nested, active)
            return fields
        finally:
            active.discard(id(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, nested, _active)
    if isinstance(value, (decimal.Decimal, uuid.UUID, pathlib.PurePath, complex)):
        return str(value)
    # numpy (never imported here): arrays (with a shape) have tolist(), scalars (with a dtype) item().
    for method, marker in (("tolist", "shape"), ("item", "dtype")):
        convert = getattr(value, method, None)
        if callable(convert) and hasattr(value, marker):
            try:
                return to_jsonable(convert(), nested, _active)
            except RecursionError:
                raise
            except Exception:  # noqa: BLE001 - fall through to the opaque form
                pass
    return _opaque(value)


# The deepest nesting a value may have (the host's `json_limits::MAX_VALUE_DEPTH`).
MAX_VALUE_DEPTH = 512


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    converted = to_jsonable(key)
    return converted if isinstance(converted, str) else json.dumps(converted)


def _opaque(value: Any, text: Optional[str] = None) -> Dict[str, str]:
    cls = type(value)
    if text is None:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not fail the call
            text = f"<{cls.__qualname__} object>"
    return {"__type__": f"{cls.__module__}.{cls.__qualname__}", "__repr__": text}


def encode_json(value: Any) -> bytes:
    """The UTF-8 JSON of a value, by the graceful serialization rules (never invalid JSON).

    orjson (when installed) serves plain data; it writes NaN as ``null``, so output holding a
    ``null`` is re-encoded by the rules, as is anything orjson refuses.
    """
    if _orjson is not None:
        out: Optional[bytes]
        try:
            out = _orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS)
        except (TypeError, _orjson.JSONEncodeError):  # e.g. sets, Decimal, integers beyond 64 bits
            out = None
        if out is not None and b"null" not in out:
            return out
    try:
        # Plain JSON data needs no conversion.
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError):  # NaN, sets, datetimes, cycles...; too deep stays a RecursionError
        return json.dumps(to_jsonable(value), allow_nan=False, separators=(",", ":")).encode()


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} goes through the graceful rules")


def loads_json(raw: bytes) -> Any:
    """Parse UTF-8 JSON (orjson when installed; what it refuses, e.g. ``NaN``, goes to ``json``)."""
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def encode_any(value: Any) -> any_pb2.Any:
    """Encode a value as an Any holding its UTF-8 JSON (the type_url is a hint)."""
    return any_pb2.Any(type_url=TYPE_URL_PREFIX + _type_name(value), value=encode_json(value))


def decode_any(message: any_pb2.Any) -> Any:
    """Decode an Any holding UTF-8 JSON (the type_url is only a hint).

    A properly packed ``google.protobuf.StringValue`` is unwrapped and its text read as JSON;
    bytes that are not JSON come back as a string.
    """
    raw = bytes(message.value)
    if not raw:
        return None
    try:
        return loads_json(raw)
    except (ValueError, UnicodeDecodeError):
        pass
    if message.type_url.endswith("google.protobuf.StringValue"):
        wrapped = wrappers_pb2.StringValue()
        try:
            wrapped.ParseFromString(raw)
        except Exception:  # noqa: BLE001 - not a StringValue after all
            pass
        else:
            try:
                return json.loads(wrapped.value)
            except ValueError:
                return wrapped.value
    return raw.decode("utf-8", errors="replace")


def decode_parameters(parameters: Mapping[str, any_pb2.Any]) -> Tuple[Dict[str, Any], Optional[str]]:
    """Decode a request's parameters; the second item names one too deep for Python to decode."""
    kwargs: Dict[str, Any] = {}
    for name, value in parameters.items():
        try:
            kwargs[name] = decode_any(value)
        except RecursionError:
            return kwargs, (
                f"argument '{name}' nests too deep for Python to decode (recursion limit "
                f"{sys.getrecursionlimit()}); flatten it or send it as bytes"
            )
    return kwargs, None


def error_object(exc: BaseException, tool: str, session_id: str, argument_keys: Iterable[str], type_name: Optional[str] = None) -> Dict[str, Any]:
    """The structured error payload of a failed call."""
    from ._errors import classify

    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    payload: Dict[str, Any] = {
        "type": type_name or type(exc).__name__,
        "message": str(exc),
        "stacktrace": [line.rstrip("\n") for line in lines],
        "traceback": "".join(lines),
        "context": {"tool": tool, "session_id": session_id, "argument_keys": sorted(argument_keys)},
    }
    recognised = classify(exc)
    if recognised is not None:
        # shape_mismatch, device_mismatch, device_unavailable, out_of_memory, missing_package
        payload["kind"], payload["details"] = recognised
    return payload


def simple_error(type_name: str, message: str, tool: str, session_id: str, argument_keys: Iterable[str]) -> Dict[str, Any]:
    """A structured error payload without a Python traceback (validation failures)."""
    return {
        "type": type_name,
        "message": message,
        "stacktrace": [],
        "traceback": "",
        "context": {"tool": tool, "session_id": session_id, "argument_keys": sorted(argument_keys)},
    }
