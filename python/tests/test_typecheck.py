"""Argument types checked against annotations, and values too deep for Python's recursion limit."""

import json
from typing import Any, Dict, List, Literal, Optional, Sequence, Union

import pytest

from conftest import start_worker
from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._typecheck import argument_problems
from snakepit_bridge._wire import decode_any, encode_any
from google.protobuf import any_pb2


def f(
    a: int,
    b: float,
    c: str,
    d: bool,
    e: List[int],
    g: Dict[str, float],
    h: Optional[int] = None,
    i: Union[int, str] = 0,
    j: Literal["x", "y"] = "x",
    k: Sequence[str] = (),
    m: int = None,
    n: Any = None,
    o: "Undefined" = None,  # noqa: F821 - unresolvable: not checked
    p: bytes = b"",
    q: list = None,
    r: dict = None,
):
    return None


GOOD = dict(a=1, b=2, c="s", d=True, e=[1, 2], g={"x": 1.5}, h=None, i="s", j="y", k=["a"], m=None, n=object(), p=b"1", q=[], r={})


def test_matching_arguments_have_no_problems():
    assert argument_problems(f, GOOD) == []
    assert argument_problems(f, dict(GOOD, b=2.5, h=3, i=4)) == []


@pytest.mark.parametrize(
    "name,value",
    [
        ("a", "1"),
        ("a", True),
        ("a", 1.5),
        ("b", "2"),
        ("b", False),
        ("c", 3),
        ("d", 1),
        ("e", [1, "2"]),
        ("e", {"x": 1}),
        ("g", {"x": "y"}),
        ("g", [1]),
        ("h", "x"),
        ("i", 1.5),
        ("j", "z"),
        ("k", "abc"),
        ("m", "x"),
        ("p", "text"),
        ("q", {}),
        ("r", []),
    ],
)
def test_each_mismatch_names_the_parameter(name, value):
    problems = argument_problems(f, dict(GOOD, **{name: value}))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"argument '{name}' must be "), problems


def test_unannotated_and_unknown_annotations_are_not_checked():
    def g(x, y: "NoSuchType" = None, **kw):  # noqa: F821
        return None

    assert argument_problems(g, {"x": object(), "y": 5, "z": 1}) == []


@pytest.fixture()
def deep_worker(tmp_path):
    w = start_worker(tmp_path, adapter="deep_adapter.DeepAdapter")
    yield w
    w.proc.kill()
    w.proc.wait()


def call(w, tool, params):
    req = pb.ExecuteToolRequest(tool_name=tool, parameters=params)
    return w.stub.ExecuteTool(req, metadata=w.metadata, timeout=30)


def test_wrong_argument_types_are_rejected_by_the_worker(deep_worker):
    r = call(deep_worker, "typed", {"count": encode_any("three"), "flag": encode_any(1)})
    assert not r.success
    err = json.loads(r.error_message)
    assert err["type"] == "InvalidArgumentsError"
    assert "argument 'count' must be int, got str 'three'" in err["message"]
    assert "argument 'flag' must be bool, got int 1" in err["message"]
    ok = call(deep_worker, "typed", {"count": encode_any(3), "ratio": encode_any(2), "items": encode_any(None)})
    assert ok.success, ok.error_message
    assert decode_any(ok.result)["ratio"] == 2


def test_a_parameter_too_deep_for_python_is_an_argument_error(deep_worker):
    raw = ("[" * 5000 + "]" * 5000).encode()
    param = any_pb2.Any(type_url="type.googleapis.com/snakepit.list", value=raw)
    r = call(deep_worker, "typed", {"count": encode_any(1), "options": param})
    assert not r.success
    err = json.loads(r.error_message)
    assert err["type"] == "InvalidArgumentsError"
    assert "'options'" in err["message"] and "deep" in err["message"]
    assert raw.decode()[:50] not in err["message"]


def test_a_result_too_deep_to_encode_is_a_recursion_error(deep_worker):
    r = call(deep_worker, "deep", {"n": encode_any(200)})
    assert r.success
    r = call(deep_worker, "deep", {"n": encode_any(100_000)})
    assert not r.success
    err = json.loads(r.error_message)
    assert err["type"] == "RecursionError", err
    assert "recursion" in err["message"]
