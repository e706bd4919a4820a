"""Zero-copy arrays: argument handles become arrays viewing shared memory; large results go back the same way.

The host writes a large argument into a segment of its arena (a memfd, opened here through
``/proc/<host pid>/fd/N``) and sends a handle (``{"__snakepit_array__": {...}}``); the tool gets
a numpy array viewing the mapping (a memoryview without numpy, a ``pyarrow.Table`` for Arrow
data). A large result is written into a region of this worker's own arena (memfds created
here; the host maps them) and only a handle goes back; the host flags the region released when
it is done with it, and the region is reused. A result that is a view of an argument's region
(the tool returned its input, or a slice of it) goes back as a handle to that region, without
any copy. ``multiprocessing.shared_memory`` is never used (its resource tracker unlinks
segments it did not create).
"""

from __future__ import annotations

import functools
import json
import mmap
import os
import struct
import threading
from types import ModuleType
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

import sys


class _LazyNumpy:
    """numpy, imported on first use: a zygote must not import it (OpenBLAS starts threads),
    and a worker that never sees an array never pays for it. Falsy when numpy is missing."""

    def __init__(self) -> None:
        self.module: Optional[ModuleType] = None
        self.tried = False

    def get(self) -> Optional[ModuleType]:
        if not self.tried:
            self.tried = True
            try:
                import numpy

                self.module = numpy
            except ImportError:
                self.module = None
        return self.module


_NUMPY = _LazyNumpy()

MARKER = "__snakepit_array__"
INLINE_PREFIX = MARKER + ":"
HEADER = 64
ALIGN = 64
MAGIC = 0x534E4B50  # "SNKP"
IN_USE = 1
RELEASED = 2
MIN_SEGMENT = 64 << 20
SEGMENT_STEP = 2 << 20

# The struct codes a memoryview can be cast to (the ones typeshed's memoryview.cast accepts).
_Code = Literal["?", "B", "b", "H", "h", "I", "i", "Q", "q", "f", "d"]
_DTYPES: Dict[str, _Code] = {
    "bool": "?", "uint8": "B", "int8": "b", "uint16": "H", "int16": "h", "uint32": "I",
    "int32": "i", "uint64": "Q", "int64": "q", "float32": "f", "float64": "d",
}
_FORMATS: Dict[str, str] = {v: k for k, v in _DTYPES.items() if v != "B"}
_SIZES = {"bool": 1, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4,
          "uint64": 8, "int64": 8, "float32": 4, "float64": 8}


class ZeroCopyError(ValueError):
    """An array handle or a result the bridge cannot carry."""


@functools.lru_cache(maxsize=None)
def settings() -> Tuple[bool, int]:
    """``(enabled, threshold_bytes)`` from ``SNAKEPIT_ZERO_COPY`` (the host's ``zero_copy`` table).

    Without the variable the host is not snakepit-rs (another host, or the original's), which
    cannot read array handles: results then never go to shared memory.
    """
    raw = os.environ.get("SNAKEPIT_ZERO_COPY")
    enabled, threshold = False, 1_048_576
    if raw:
        enabled = True
        try:
            cfg = json.loads(raw)
            enabled = bool(cfg.get("enabled", enabled))
            threshold = int(cfg.get("threshold_bytes", threshold))
        except (ValueError, TypeError, AttributeError):
            pass
    return enabled, threshold


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


# -- arguments ---------------------------------------------------------------------------
class _HostMaps:
    """The host's segments mapped into this worker, by segment id."""

    def __init__(self) -> None:
        self.maps: Dict[str, Tuple[mmap.mmap, int]] = {}
        self.lock = threading.Lock()

    def view(self, shm: Dict[str, Any]) -> memoryview:
        segment, path, size = str(shm["segment"]), str(shm["path"]), int(shm["size"])
        offset, length = int(shm["offset"]), int(shm["length"])
        if offset < 0 or length < 0 or offset + length > size:
            raise ZeroCopyError(f"array handle {offset}+{length} does not fit segment {segment} of {size} bytes")
        with self.lock:
            entry = self.maps.get(segment)
            if entry is None or len(entry[0]) < size:
                fd = os.open(path, os.O_RDWR)
                try:
                    mm = mmap.mmap(fd, size)
                finally:
                    os.close(fd)
                entry = (mm, _address(mm))
                self.maps[segment] = entry
                if len(self.maps) > 8:  # the host reuses its largest segment; old ones go
                    oldest = next(iter(self.maps))
                    if oldest != segment:
                        self.maps.pop(oldest)
        return memoryview(entry[0])[offset:offset + length]

    def locate(self, address: int, nbytes: int) -> Optional[Dict[str, Any]]:
        """The host segment range holding ``[address, address + nbytes)``, if any."""
        with self.lock:
            for segment, (mm, base) in self.maps.items():
                if base and base <= address and address + nbytes <= base + len(mm):
                    return {"segment": segment, "offset": address - base, "length": nbytes}
        return None


def _address(buffer: Any) -> int:
    """The address of a writable buffer's first byte (0 when it cannot be known)."""
    _np = _NUMPY.get()
    try:
        if _np is not None:
            return int(_np.frombuffer(buffer, dtype=_np.uint8, count=1).__array_interface__["data"][0])
        import ctypes

        return ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    except (ImportError, TypeError, ValueError, BufferError):
        return 0


HOST = _HostMaps()


def _as_array(desc: Dict[str, Any], view: memoryview) -> Any:
    fmt = desc.get("format", "ndarray")
    if fmt == "bytes":
        return view
    if fmt == "arrow_ipc":
        try:
            import pyarrow as pa
        except ImportError:
            return view
        return pa.ipc.open_stream(pa.py_buffer(view)).read_all()
    dtype = str(desc.get("dtype", "uint8"))
    if dtype not in _DTYPES:
        raise ZeroCopyError(f"array dtype {dtype!r} is not one snakepit carries")
    shape = [int(d) for d in desc.get("shape", [])]
    _np = _NUMPY.get()
    if _np is not None:
        return _np.frombuffer(view, dtype=_np.dtype(dtype)).reshape(shape)
    return memoryview(view).cast("B").cast(_DTYPES[dtype], shape)


def resolve_arguments(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Replace array markers by arrays and drop the bytes that carried inline arrays."""
    if not any(k.startswith(INLINE_PREFIX) for k in kwargs) and not any(
        isinstance(v, dict) and MARKER in v for v in kwargs.values()
    ):
        return kwargs
    inline = {k: kwargs.pop(k) for k in [k for k in kwargs if k.startswith(INLINE_PREFIX)]}
    for name, value in list(kwargs.items()):
        if not (isinstance(value, dict) and isinstance(value.get(MARKER), dict)):
            continue
        desc = value[MARKER]
        if "shm" in desc:
            view = HOST.view(desc["shm"])
        elif desc.get("inline") in inline:
            # A writable copy of a small buffer, so the array is writable and DLPack-exportable
            # like one that views shared memory.
            view = memoryview(bytearray(inline[desc["inline"]]))
        else:
            raise ZeroCopyError(f"argument {name!r} names array bytes the call does not carry")
        kwargs[name] = _as_array(desc, view)
    return kwargs


# -- results -----------------------------------------------------------------------------
class _Segment:
    def __init__(self, seq: int, size: int) -> None:
        self.id = f"py-{os.getpid()}-{seq}"
        self.fd = os.memfd_create(self.id, os.MFD_CLOEXEC) if hasattr(os, "memfd_create") else -1
        if self.fd >= 0:
            os.ftruncate(self.fd, size)
            self.path = f"/proc/{os.getpid()}/fd/{self.fd}"
            self.unlink = None
        else:  # POSIX shm: a 0600 file under /dev/shm, removed when the segment goes
            self.path = f"/dev/shm/snakepit-{self.id}"
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.ftruncate(self.fd, size)
            self.unlink = self.path
        self.size = size
        self.mm = mmap.mmap(self.fd, size)
        self.free: List[List[int]] = [[0, size]]
        self.regions: Dict[int, int] = {}  # data offset -> allocated length (header included)

    def allocate(self, nbytes: int) -> Optional[int]:
        need = _align(HEADER + max(nbytes, 1))
        for i, (off, length) in enumerate(self.free):
            if length >= need:
                if length == need:
                    self.free.pop(i)
                else:
                    self.free[i] = [off + need, length - need]
                struct.pack_into("=II", self.mm, off, MAGIC, IN_USE)
                self.regions[off + HEADER] = need
                return off + HEADER
        return None

    def reclaim(self) -> None:
        for data_off, need in list(self.regions.items()):
            magic, state = struct.unpack_from("=II", self.mm, data_off - HEADER)
            if magic == MAGIC and state == RELEASED:
                del self.regions[data_off]
                self._free(data_off - HEADER, need)

    def _free(self, off: int, length: int) -> None:
        self.free.append([off, length])
        self.free.sort()
        merged: List[List[int]] = []
        for o, l in self.free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1][1] += l
            else:
                merged.append([o, l])
        self.free = merged

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)
        if self.unlink:
            try:
                os.unlink(self.unlink)
            except OSError:
                pass


class WorkerArena:
    """This worker's result segments; the host releases regions by flagging their headers."""

    def __init__(self) -> None:
        self.segments: List[_Segment] = []
        self.seq = 0
        self.lock = threading.Lock()

    def reclaim(self) -> None:
        with self.lock:
            for seg in self.segments:
                seg.reclaim()
            # Keep the largest segment (warm pages); unmap other empty ones.
            if len(self.segments) > 1:
                largest = max(self.segments, key=lambda s: s.size)
                for seg in [s for s in self.segments if s is not largest and not s.regions]:
                    self.segments.remove(seg)
                    seg.close()

    def write(self, data: Any) -> Dict[str, Any]:
        """Copy ``data`` (a buffer) into a fresh region and return its handle."""
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" else data
        nbytes = view.nbytes
        self.reclaim()
        with self.lock:
            for seg in self.segments:
                off = seg.allocate(nbytes)
                if off is not None:
                    break
            else:
                size = max(MIN_SEGMENT, -(-(nbytes + HEADER) // SEGMENT_STEP) * SEGMENT_STEP)
                self.seq += 1
                seg = _Segment(self.seq, size)
                self.segments.append(seg)
                off = seg.allocate(nbytes)
                if off is None:
                    raise ZeroCopyError(f"a fresh segment of {size} bytes cannot hold {nbytes} bytes")
            seg.mm[off:off + nbytes] = view
            return {"path": seg.path, "segment": seg.id, "size": seg.size, "offset": off, "length": nbytes}

    def regions_in_use(self) -> int:
        """Regions the host has not released yet (after reclaiming released ones)."""
        self.reclaim()
        with self.lock:
            return sum(len(s.regions) for s in self.segments)


ARENA = WorkerArena()


def _describe(fmt: str, dtype: str, shape: Sequence[int], nbytes: int) -> Dict[str, Any]:
    strides: List[int] = []
    step = _SIZES.get(dtype, 1)
    for d in reversed(list(shape)):
        strides.insert(0, step)
        step *= int(d)
    return {"format": fmt, "dtype": dtype, "shape": [int(d) for d in shape], "strides": strides, "nbytes": nbytes}


def _arrow_ipc(table: Any) -> Any:
    """The Arrow IPC stream of a pyarrow Table or RecordBatch (a ``pyarrow.Buffer``), else None."""
    try:
        import pyarrow as pa
    except ImportError:
        return None
    if not isinstance(table, (pa.Table, pa.RecordBatch)):
        return None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue()


# Values that never carry an array at the level encode_result looks at.
_PLAIN = frozenset({str, int, float, bool, type(None), dict, list, tuple})


def encode_result(result: Any) -> Tuple[Any, Optional[bytes]]:
    """Place large arrays of a result in shared memory; returns ``(result, inline bytes)``.

    A top-level numpy array below the threshold travels inline (its bytes in
    ``binary_result``), so the host still gets its dtype and shape; smaller arrays nested in
    a dict or list stay JSON lists, as the original encodes them.
    """
    enabled, threshold = settings()
    # A tool that returned a numpy array has imported numpy; never import it here.
    _np = sys.modules.get("numpy")

    def place(value: Any, top: bool) -> Tuple[Any, Optional[bytes]]:
        arrow = _arrow_ipc(value) if type(value).__module__.startswith("pyarrow") else None
        if arrow is not None:
            desc = _describe("arrow_ipc", "uint8", [arrow.size], arrow.size)
            if enabled and arrow.size >= threshold:
                desc["shm"] = ARENA.write(arrow)
                return {MARKER: desc}, None
            if top:
                desc["inline"] = "result"
                return {MARKER: desc}, arrow.to_pybytes()
            raise ZeroCopyError("a pyarrow table nested in a result must be at least threshold_bytes; return it on its own")
        if _np is not None and isinstance(value, _np.ndarray) and value.dtype.name in _DTYPES:
            desc = _describe("ndarray", value.dtype.name, value.shape, int(value.nbytes))
            if value.flags["C_CONTIGUOUS"] and value.nbytes:
                echoed = HOST.locate(int(value.__array_interface__["data"][0]), int(value.nbytes))
                if echoed is not None:
                    desc["shm"] = echoed
                    return {MARKER: desc}, None
            if enabled and value.nbytes >= threshold:
                desc["shm"] = ARENA.write(_np.ascontiguousarray(value).reshape(-1).view(_np.uint8))
                return {MARKER: desc}, None
            if top:
                desc["inline"] = "result"
                return {MARKER: desc}, _np.ascontiguousarray(value).tobytes()
            return value.tolist(), None
        if isinstance(value, memoryview) and value.format in _FORMATS and value.nbytes:
            # An array without numpy: keep its dtype and shape.
            desc = _describe("ndarray", _FORMATS[value.format], value.shape or [], value.nbytes)
            if value.c_contiguous and not value.readonly:
                echoed = HOST.locate(_address(value), value.nbytes)
                if echoed is not None:
                    desc["shm"] = echoed
                    return {MARKER: desc}, None
            if enabled and value.nbytes >= threshold:
                desc["shm"] = ARENA.write(value.tobytes() if not value.c_contiguous else value)
                return {MARKER: desc}, None
            if top:
                desc["inline"] = "result"
                return {MARKER: desc}, value.tobytes()
            return value.tolist(), None
        if isinstance(value, (bytes, bytearray, memoryview)) and enabled and memoryview(value).nbytes >= threshold:
            n = memoryview(value).nbytes
            desc = _describe("bytes", "uint8", [n], n)
            desc["shm"] = ARENA.write(value)
            return {MARKER: desc}, None
        return value, None

    if not isinstance(result, (dict, list)):
        if type(result) in _PLAIN:
            return result, None
        return place(result, True)
    # Arrays one or two levels down (dicts of arrays, lists of arrays) are placed too; the
    # common result of plain JSON values goes back as it is, without a copy.
    values = result.values() if isinstance(result, dict) else result
    if all(type(v) in _PLAIN for v in values):
        return result, None
    if isinstance(result, dict):
        out = {}
        for k, v in result.items():
            out[k] = place(v, False)[0]
        return out, None
    return [place(v, False)[0] for v in result], None
