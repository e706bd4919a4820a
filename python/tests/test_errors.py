"""Recognised failures: shape, device, out-of-memory and missing-package errors get a kind and suggestions."""

import sys

from snakepit_bridge._errors import classify, extract_shape
from snakepit_bridge._wire import error_object


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError."""


def test_cuda_and_host_out_of_memory():
    kind, d = classify(OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 1; 7.79 GiB total capacity; 11.31 MiB free)"
    ))
    assert kind == "out_of_memory"
    assert d["device"] == "cuda:1"
    assert d["requested_bytes"] == 2 * 1024**3
    assert d["available_bytes"] == int(11.31 * 1024**2)
    assert "Reduce batch size" in d["suggestions"]
    assert "Use torch.cuda.empty_cache() to clear cached memory" in d["suggestions"]
    assert "Use a smaller model architecture" in d["suggestions"]  # requested > 2x free
    kind, d = classify(MemoryError())
    assert (kind, d["device"]) == ("out_of_memory", "cpu")
    assert "Use torch.cuda.empty_cache() to clear cached memory" not in d["suggestions"]


def test_missing_package_names_the_install_command():
    try:
        import snakepit_not_a_real_package  # noqa: F401
    except ModuleNotFoundError as exc:
        kind, d = classify(exc)
    assert kind == "missing_package"
    assert d["packages"] == ["snakepit_not_a_real_package"]
    assert d["suggestions"] == [f"Install it into the worker's Python: {sys.executable} -m pip install snakepit_not_a_real_package"]


def test_device_mismatch_and_unavailable():
    kind, d = classify(RuntimeError("Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"))
    assert (kind, d["expected"], d["got"]) == ("device_mismatch", "cuda:0", "cpu")
    kind, d = classify(AssertionError("Torch not compiled with CUDA enabled"))
    assert (kind, d["device"]) == ("device_unavailable", "cuda")


def test_shape_mismatch_finds_the_differing_dimension():
    kind, d = classify(ValueError("shape mismatch: expected [3, 224, 224], got [3, 256, 256] in conv2d"))
    assert kind == "shape_mismatch"
    assert (d["expected"], d["got"], d["dimension"], d["operation"]) == ([3, 224, 224], [3, 256, 256], 1, "conv2d")
    kind, d = classify(ValueError("operands could not be broadcast together with shapes (3,) (4,)"))
    assert (kind, d["expected"], d["got"]) == ("shape_mismatch", [3], [4])
    assert classify(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"))[1]["got"] == [4, 5]
    assert extract_shape("(10, 20)") == [10, 20]
    assert extract_shape("[3, 224, 224]") == [3, 224, 224]


def test_other_errors_stay_plain_and_error_objects_carry_the_kind():
    assert classify(ValueError("bad input")) is None
    payload = error_object(MemoryError(), "train", "s", ["x"])
    assert payload["kind"] == "out_of_memory" and payload["details"]["device"] == "cpu"
    assert "kind" not in error_object(ValueError("bad"), "t", "", [])
