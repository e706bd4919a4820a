"""Recognised failures of ML code: shape and device mismatches, out of memory, missing packages.

``classify(exc)`` returns the ``kind`` and ``details`` the error object carries (see
``_wire.error_object``), so the host gets a typed error instead of parsing messages. Types are
used where Python has them (``MemoryError``, torch's ``OutOfMemoryError``,
``ModuleNotFoundError``); shapes and devices are recognised by the messages NumPy and PyTorch
write, as the original's host-side parser does.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Dict, List, Optional, Tuple

OOM_SUGGESTIONS = [
    "Reduce batch size",
    "Use gradient checkpointing",
    "Enable mixed precision training (FP16/BF16)",
    "Free unused tensors with del or gc.collect()",
]
CUDA_OOM_SUGGESTIONS = [
    "Use torch.cuda.empty_cache() to clear cached memory",
    "Set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True",
]
MPS_OOM_SUGGESTIONS = ["Use torch.mps.empty_cache() to clear cached memory"]
EXTREME_OOM_SUGGESTIONS = ["Consider model parallelism or offloading to CPU", "Use a smaller model architecture"]
SHAPE_SUGGESTIONS = ["Check the input's dimensions against what the operation expects (reshape, transpose or pad it)"]
DEVICE_MISMATCH_SUGGESTIONS = ["Move every tensor of the operation to one device (tensor.to(device)) first"]
DEVICE_UNAVAILABLE_SUGGESTIONS = [
    "Select a device this machine has (`snakepit hardware` lists them) or fall back to cpu",
]

_UNITS = {"b": 1, "bytes": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}
_SIZE = r"([\d.]+)\s*(GiB|MiB|KiB|GB|MB|KB|bytes|B)\b"
_DEVICE = re.compile(r"\b(cuda:\d+|cuda|mps|cpu|rocm:\d+)\b", re.IGNORECASE)
_UNAVAILABLE = (
    "cuda is not available",
    "no cuda gpus are available",
    "torch not compiled with cuda",
    "invalid device ordinal",
    "mps backend is not available",
    "found no nvidia driver",
    "cuda driver version is insufficient",
)


def classify(exc: BaseException) -> Optional[Tuple[str, Dict[str, Any]]]:
    """``(kind, details)`` of a recognised failure, or ``None``."""
    message = str(exc)
    lower = message.lower()
    type_name = type(exc).__name__
    if isinstance(exc, MemoryError) and type_name == "MemoryError":
        return "out_of_memory", _oom("cpu", message)
    if type_name == "OutOfMemoryError" or "out of memory" in lower or ("cuda" in lower and "allocate" in lower):
        return "out_of_memory", _oom(_device_of(message) or ("cuda:0" if "cuda" in lower or "gpu" in lower else "cpu"), message)
    if isinstance(exc, ModuleNotFoundError):
        package = (exc.name or _quoted(message) or "").split(".")[0]
        return "missing_package", {
            "packages": [package] if package else [],
            "suggestions": [f"Install it into the worker's Python: {sys.executable} -m pip install {package or '<package>'}"],
        }
    if any(p in lower for p in _UNAVAILABLE):
        return "device_unavailable", {
            "device": _device_of(message) or ("mps" if "mps" in lower else "cuda"),
            "operation": _operation(message),
            "suggestions": list(DEVICE_UNAVAILABLE_SUGGESTIONS),
        }
    if "device" in lower and ("same device" in lower or "mismatch" in lower or "expected" in lower):
        devices = [d.lower() for d in _DEVICE.findall(message)]
        return "device_mismatch", {
            "expected": devices[0] if devices else None,
            "got": devices[1] if len(devices) > 1 else None,
            "operation": _operation(message),
            "suggestions": list(DEVICE_MISMATCH_SUGGESTIONS),
        }
    if _is_shape_error(lower):
        expected, got = _shapes(message)
        return "shape_mismatch", {
            "expected": expected,
            "got": got,
            "dimension": _first_difference(expected, got),
            "operation": _operation(message),
            "suggestions": list(SHAPE_SUGGESTIONS),
        }
    return None


def extract_shape(text: str) -> Optional[List[int]]:
    """The first ``[a, b, c]``, ``(a, b)`` or ``axb`` shape in ``text`` (the original's ``extract_shape``)."""
    match = re.search(r"[\[(]\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*[\])]", text) or re.search(r"\b(\d+(?:x\d+)+)\b", text)
    if not match:
        return None
    return [int(d) for d in re.split(r"\s*[,x]\s*", match.group(1).strip()) if d]


def _is_shape_error(lower: str) -> bool:
    return (
        ("shape" in lower and ("mismatch" in lower or "expected" in lower or "got" in lower or "cannot be multiplied" in lower))
        or "could not be broadcast" in lower
        or "size mismatch" in lower
        or "must match the size of tensor" in lower
    )


def _shapes(message: str) -> Tuple[Optional[List[int]], Optional[List[int]]]:
    expected: Optional[List[int]] = None
    got: Optional[List[int]] = None
    m = re.search(r"expected[^\[(\d]*([\[(][\d,\s]+[\])])", message, re.IGNORECASE)
    if m:
        expected = extract_shape(m.group(1))
    m = re.search(r"got[^\[(\d]*([\[(][\d,\s]+[\])])", message, re.IGNORECASE)
    if m:
        got = extract_shape(m.group(1))
    if expected is None and got is None:
        found = re.findall(r"[\[(]\s*\d+(?:\s*,\s*\d+)*\s*,?\s*[\])]|\b\d+(?:x\d+)+\b", message)
        if len(found) >= 2:
            expected, got = extract_shape(found[0]), extract_shape(found[1])
    return expected, got


def _first_difference(a: Optional[List[int]], b: Optional[List[int]]) -> Optional[int]:
    if not a or not b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _oom(device: str, message: str) -> Dict[str, Any]:
    requested = _bytes(re.search(r"allocate\s+" + _SIZE, message, re.IGNORECASE))
    available = _bytes(re.search(_SIZE + r"\s+(?:is\s+)?free", message, re.IGNORECASE)) or _bytes(
        re.search(r"(?:available|free)[:\s]+" + _SIZE, message, re.IGNORECASE)
    )
    suggestions = list(OOM_SUGGESTIONS)
    if device.startswith("cuda"):
        suggestions += CUDA_OOM_SUGGESTIONS
    elif device == "mps":
        suggestions += MPS_OOM_SUGGESTIONS
    if requested and available is not None and requested / max(available, 1) > 2.0:
        suggestions += EXTREME_OOM_SUGGESTIONS
    return {"device": device, "requested_bytes": requested, "available_bytes": available, "suggestions": suggestions}


def _bytes(match: Optional[re.Match[str]]) -> Optional[int]:
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _device_of(message: str) -> Optional[str]:
    m = re.search(r"\b((?:cuda|rocm):\d+)\b", message, re.IGNORECASE)
    if m:
        return m.group(1).lower()
    m = re.search(r"\bGPU\s+(\d+)", message)
    if m:
        return f"cuda:{m.group(1)}"
    m = _DEVICE.search(message)
    return m.group(1).lower() if m else None


def _operation(message: str) -> Optional[str]:
    m = re.search(r"\b(?:in|during|for)\s+([A-Za-z_]\w*)", message)
    return m.group(1) if m else None


def _quoted(message: str) -> Optional[str]:
    m = re.search(r"'([^']+)'", message)
    return m.group(1) if m else None
