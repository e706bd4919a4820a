"""Seed-compatible ``snakepit_bridge.serialization``: ``TypeSerializer`` and the graceful rules.

``TypeSerializer.encode_any(value, var_type)`` returns ``(Any, None)``: the value's UTF-8 JSON
in an ``Any`` with ``type_url`` ``type.googleapis.com/snakepit.<var_type>``. Unlike the
original, it never returns a pickled side payload (the second element is always ``None``) and
``decode_any`` never unpickles: binary data it is handed is returned as ``bytes``. Values JSON
cannot hold follow :func:`to_jsonable` (NaN and infinities as ``"NaN"``/``"Infinity"``/
``"-Infinity"``, datetimes as ISO 8601, numpy values as lists and numbers, ...), the same rules
every result and stream chunk of the worker follows on every transport.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

from google.protobuf import any_pb2

from ._wire import TYPE_URL_PREFIX, _type_name, decode_any as _decode_json_any, encode_json, to_jsonable

__all__ = ["BINARY_THRESHOLD", "TypeSerializer", "encode_json", "to_jsonable"]

# The original's size above which tensors and embeddings went out of band; kept for imports.
BINARY_THRESHOLD = 10_240

_SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class TypeSerializer:
    """Encoding of typed values as the bridge protocol's JSON ``Any`` messages."""

    @staticmethod
    def encode_any(value: Any, var_type: str = "") -> Tuple[any_pb2.Any, Optional[bytes]]:
        """Encode ``value`` as an ``Any`` of ``var_type`` (inferred when empty); no side payload."""
        normalized = TypeSerializer._normalize_value(value, var_type)
        kind = var_type or _type_name(normalized)
        return any_pb2.Any(type_url=f"{TYPE_URL_PREFIX}{kind}", value=encode_json(normalized)), None

    @staticmethod
    def decode_any(any_msg: any_pb2.Any, binary_data: Optional[bytes] = None) -> Any:
        """Decode an ``Any`` holding JSON; typed by the ``type_url``'s last part (a hint).

        ``binary_data`` is returned as ``bytes``: pickled payloads are never loaded.
        """
        if binary_data is not None:
            return bytes(binary_data)
        value = _decode_json_any(any_msg)
        kind = any_msg.type_url.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
        return TypeSerializer._deserialize_value(value, kind)

    @staticmethod
    def _normalize_value(value: Any, var_type: str) -> Any:
        if var_type == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"Expected number, got {type(value)}")
            return float(value)
        if var_type == "integer":
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise ValueError(f"Expected integer, got {value}")
        if var_type == "boolean":
            if isinstance(value, bool):
                return value
            raise ValueError(f"Expected boolean, got {type(value)}")
        if var_type in ("string", "choice", "module"):
            return str(value)
        if var_type == "embedding":
            if hasattr(value, "tolist"):
                return value.tolist()
            if isinstance(value, (list, tuple)):
                return [float(x) for x in value]
            raise ValueError(f"Expected array/list, got {type(value)}")
        if var_type == "tensor":
            if hasattr(value, "shape") and hasattr(value, "tolist"):
                return {"shape": list(value.shape), "data": value.tolist()}
            if isinstance(value, dict) and "shape" in value and "data" in value:
                return value
            raise ValueError(f"Expected tensor, got {type(value)}")
        return value

    @staticmethod
    def _deserialize_value(value: Any, var_type: str) -> Any:
        if var_type == "float":
            if isinstance(value, str) and value in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[value]
            return float(value)
        if var_type == "integer":
            return int(value)
        if var_type == "tensor" and isinstance(value, dict) and "data" in value and "shape" in value:
            try:
                import numpy as np
            except ImportError:
                return value
            return np.array(value["data"]).reshape(value["shape"])
        return value

    @staticmethod
    def validate_constraints(value: Any, var_type: str, constraints: Dict[str, Any]) -> None:
        """Raise ``ValueError`` when ``value`` breaks ``constraints`` (min/max, lengths, choices, shape)."""
        if var_type in ("float", "integer"):
            low, high = constraints.get("min"), constraints.get("max")
            if low is not None and value < low:
                raise ValueError(f"Value {value} is below minimum {low}")
            if high is not None and value > high:
                raise ValueError(f"Value {value} is above maximum {high}")
        elif var_type == "string":
            low, high = constraints.get("min_length", 0), constraints.get("max_length")
            if len(value) < low:
                raise ValueError(f"String too short: {len(value)} < {low}")
            if high and len(value) > high:
                raise ValueError(f"String too long: {len(value)} > {high}")
        elif var_type == "choice":
            choices = constraints.get("choices", [])
            if choices and value not in choices:
                raise ValueError(f"Value {value} not in allowed choices: {choices}")
        elif var_type == "embedding":
            dims = constraints.get("dimensions")
            if dims and len(value) != dims:
                raise ValueError(f"Wrong dimensions: {len(value)} != {dims}")
        elif var_type == "tensor":
            shape = constraints.get("shape")
            actual = value.get("shape") if isinstance(value, dict) else list(getattr(value, "shape", []))
            if shape and actual != shape:
                raise ValueError(f"Wrong shape: {actual} != {shape}")



def dumps(value: Any) -> str:
    """JSON text of ``value`` by the graceful rules (like ``json.dumps``, never invalid JSON)."""
    return encode_json(value).decode()


def loads(text: Any) -> Any:
    """Parse JSON text or bytes."""
    return json.loads(text)
