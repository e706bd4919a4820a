"""Value encoding of the bridge protocol: JSON inside ``google.protobuf.Any``, error objects."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Dict, Optional, Tuple

from google.protobuf import any_pb2, wrappers_pb2

try:  # orjson encodes and decodes several times faster; the standard library is the fallback
    import orjson as _orjson

    _ORJSON_OPTIONS = (
        _orjson.OPT_NON_STR_KEYS
        | _orjson.OPT_PASSTHROUGH_DATETIME
        | _orjson.OPT_PASSTHROUGH_DATACLASS
        | _orjson.OPT_PASSTHROUGH_SUBCLASS
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


def to_jsonable(value: Any) -> Any:
    """Make a value JSON-serialisable: tuples become lists, numpy arrays lists, others repr."""
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(value, key=repr)]
    return value


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value (orjson when installed; what it refuses goes to ``json``)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value, default=_fallback, option=_ORJSON_OPTIONS)
        except (TypeError, _orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
            pass
    return json.dumps(value, default=_fallback, separators=(",", ":")).encode()


def loads_json(raw: bytes) -> Any:
    """Parse UTF-8 JSON (orjson when installed; what it refuses, e.g. ``NaN``, goes to ``json``)."""
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def _fallback(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:
        return repr(value)
    return converted


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
            wrapped = None
        if wrapped is not None:
            try:
                return json.loads(wrapped.value)
            except ValueError:
                return wrapped.value
    return raw.decode("utf-8", errors="replace")


def decode_parameters(parameters) -> Tuple[Dict[str, Any], Optional[str]]:
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


def error_object(exc: BaseException, tool: str, session_id: str, argument_keys, type_name: Optional[str] = None) -> Dict[str, Any]:
    """The structured error payload of a failed call."""
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "type": type_name or type(exc).__name__,
        "message": str(exc),
        "stacktrace": [line.rstrip("\n") for line in lines],
        "traceback": "".join(lines),
        "context": {"tool": tool, "session_id": session_id, "argument_keys": sorted(argument_keys)},
    }


def simple_error(type_name: str, message: str, tool: str, session_id: str, argument_keys) -> Dict[str, Any]:
    """A structured error payload without a Python traceback (validation failures)."""
    return {
        "type": type_name,
        "message": message,
        "stacktrace": [],
        "traceback": "",
        "context": {"tool": tool, "session_id": session_id, "argument_keys": sorted(argument_keys)},
    }
