"""Zero-copy arrays on the Python side: handles to arrays, large results to shared memory, release flags."""

import mmap
import os
import struct

import numpy as np
import pytest

from snakepit_bridge import _shm


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setenv("SNAKEPIT_ZERO_COPY", '{"enabled": true, "threshold_bytes": 1024}')
    _shm.settings.cache_clear()
    yield
    _shm.settings.cache_clear()


def host_segment(data: bytes, size: int = 1 << 16):
    """A stand-in for the host's arena: a memfd holding ``data`` at offset 128."""
    fd = os.memfd_create("test-host", 0)
    os.ftruncate(fd, size)
    mm = mmap.mmap(fd, size)
    mm[128:128 + len(data)] = data
    path = f"/proc/{os.getpid()}/fd/{fd}"
    seg = f"host-{fd}"
    return mm, fd, {"path": path, "segment": seg, "size": size, "offset": 128, "length": len(data)}


def marker(shm, dtype, shape, fmt="ndarray"):
    return {_shm.MARKER: {"format": fmt, "dtype": dtype, "shape": shape, "shm": shm}}


def test_a_shared_memory_argument_is_a_writable_numpy_view_and_echoes_back_by_handle():
    values = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    mm, fd, shm = host_segment(values.tobytes())
    kwargs = _shm.resolve_arguments({"x": marker(shm, "float32", [2, 3, 4]), "n": 3})
    x = kwargs["x"]
    assert isinstance(x, np.ndarray) and x.shape == (2, 3, 4) and x.flags["WRITEABLE"]
    np.testing.assert_array_equal(x, values)
    x[0, 0, 0] = 99.0  # a view: the host's memory changes
    assert struct.unpack_from("f", mm, 128)[0] == 99.0
    out, inline = _shm.encode_result(x)
    assert inline is None
    assert out[_shm.MARKER]["shm"]["segment"] == shm["segment"]
    assert out[_shm.MARKER]["shm"]["offset"] == 128
    os.close(fd)


def test_large_results_go_to_the_worker_arena_until_the_host_releases_them():
    before = _shm.ARENA.regions_in_use()
    out, inline = _shm.encode_result({"emb": np.ones((64, 64), dtype=np.float64), "label": "x"})
    assert inline is None and out["label"] == "x"
    handle = out["emb"][_shm.MARKER]["shm"]
    assert handle["path"].startswith(f"/proc/{os.getpid()}/fd/")
    assert _shm.ARENA.regions_in_use() == before + 1
    fd = os.open(handle["path"], os.O_RDWR)
    view = mmap.mmap(fd, handle["size"])
    os.close(fd)
    assert np.frombuffer(view, dtype=np.float64, count=4096, offset=handle["offset"]).sum() == 4096.0
    magic, state = struct.unpack_from("=II", view, handle["offset"] - _shm.HEADER)
    assert (magic, state) == (_shm.MAGIC, _shm.IN_USE)
    struct.pack_into("=I", view, handle["offset"] - _shm.HEADER + 4, _shm.RELEASED)  # what the host does
    assert _shm.ARENA.regions_in_use() == before


def test_small_arrays_travel_inline_and_nested_small_ones_stay_lists():
    out, inline = _shm.encode_result(np.array([1, 2, 3], dtype=np.int64))
    assert out[_shm.MARKER]["inline"] == "result" and out[_shm.MARKER]["shape"] == [3]
    assert inline == np.array([1, 2, 3], dtype=np.int64).tobytes()
    nested, inline = _shm.encode_result({"v": np.array([1.5, 2.5])})
    assert nested == {"v": [1.5, 2.5]} and inline is None
    kwargs = _shm.resolve_arguments(
        {"x": {_shm.MARKER: {"format": "ndarray", "dtype": "int16", "shape": [2], "inline": "__snakepit_array__:x"}},
         "__snakepit_array__:x": b"\x01\x00\x02\x00"}
    )
    assert list(kwargs) == ["x"] and kwargs["x"].tolist() == [1, 2]


def test_bad_handles_are_clear_errors():
    mm, fd, shm = host_segment(b"abcd", size=4096)
    shm["length"] = 1 << 20
    with pytest.raises(_shm.ZeroCopyError, match="does not fit"):
        _shm.resolve_arguments({"x": marker(shm, "uint8", [1 << 20])})
    shm["length"] = 4
    with pytest.raises(_shm.ZeroCopyError, match="complex128"):
        _shm.resolve_arguments({"x": marker(shm, "complex128", [1])})
    with pytest.raises(_shm.ZeroCopyError, match="does not carry"):
        _shm.resolve_arguments({"x": {_shm.MARKER: {"format": "bytes", "inline": "missing"}}})
    os.close(fd)
