"""Seed-compatible ``snakepit_bridge.zero_copy``: the ``ZeroCopyRef`` handle.

A ``ZeroCopyRef`` describes a buffer exported elsewhere (``kind`` ``dlpack`` or ``arrow``,
``device``, ``dtype``, ``shape``, ``bytes``, ``owner``, ``copy``, ``metadata``, and the opaque
``ref``). This module only represents such handles, as the original's does: it recognises
them in payloads and round-trips them; resolving a handle to memory is the job of the
transport that created it (see python/README.md for what travels without a copy today).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = ["ZeroCopyRef", "is_zero_copy_payload"]

_FIELDS = ("kind", "device", "dtype", "shape", "owner", "ref", "copy", "bytes")
_KINDS = ("dlpack", "arrow")


class ZeroCopyRef:
    """An opaque handle to a DLPack or Arrow buffer, as it travels in a payload."""

    def __init__(self, payload: Dict[str, Any]) -> None:
        self.payload = dict(payload)
        self.kind: Optional[str] = self.payload.get("kind")
        self.device = self.payload.get("device")
        self.dtype = self.payload.get("dtype")
        self.shape = self.payload.get("shape")
        self.owner = self.payload.get("owner")
        self.ref = self.payload.get("ref")
        self.copy = self.payload.get("copy")
        self.bytes = self.payload.get("bytes")
        self.metadata: Dict[str, Any] = dict(self.payload.get("metadata") or {})

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "ZeroCopyRef":
        """Build a handle from its payload dict."""
        return cls(payload)

    def to_payload(self) -> Dict[str, Any]:
        """The handle as a JSON-ready dict (what was given, current attribute values on top)."""
        out = dict(self.payload)
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZeroCopyRef) and self.to_payload() == other.to_payload()

    def __repr__(self) -> str:
        return f"<ZeroCopyRef kind={self.kind} device={self.device} ref={self.ref}>"


def is_zero_copy_payload(value: Any) -> bool:
    """Whether ``value`` is the dict form of a ``ZeroCopyRef`` (``kind`` dlpack/arrow and a ``ref``)."""
    return isinstance(value, dict) and value.get("kind") in _KINDS and "ref" in value
