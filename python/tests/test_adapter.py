"""The adapter API: @tool, parameter inference, StreamChunk, wire helpers."""

from typing import Dict, List, Optional

from snakepit_bridge import BaseAdapter, StreamChunk, tool
from snakepit_bridge._wire import decode_any, encode_any
from snakepit_bridge.adapters.showcase.tool import StreamChunk as SeedStreamChunk
from snakepit_bridge.server import chunk_parts


class Sample(BaseAdapter):
    @tool
    def bare(self, text: str, count: int = 2) -> str:
        """Repeat text."""
        return text * count

    @tool(description="explicit", supports_streaming=True, required_variables=["temperature"])
    def opts(self, xs: List[float], m: Dict[str, int], blob: bytes, flag: bool = False, maybe: Optional[float] = None):
        yield xs

    def not_a_tool(self):
        return 1


def test_tool_works_bare_and_with_options():
    tools = Sample().get_tools()
    assert set(tools) == {"bare", "opts"}
    assert tools["bare"].description == "Repeat text."
    assert tools["bare"].supports_streaming is False
    assert tools["opts"].description == "explicit"
    assert tools["opts"].supports_streaming is True
    assert tools["opts"].required_variables == ["temperature"]


def test_parameter_types_are_inferred_from_hints():
    params = {p.name: p for p in Sample().get_tools()["opts"].parameters}
    assert params["xs"].type == "embedding"
    assert params["m"].type == "map"
    assert params["blob"].type == "binary"
    assert params["flag"].type == "boolean" and params["flag"].required is False
    assert params["maybe"].type == "float"
    bare = {p.name: p for p in Sample().get_tools()["bare"].parameters}
    assert bare["text"].type == "string" and bare["text"].required
    assert bare["count"].type == "integer" and bare["count"].default == 2


def test_stream_chunk_envelopes():
    assert chunk_parts(StreamChunk({"a": 1}, is_final=True, metadata={"k": "v"})) == (b'{"a":1}', True, {"k": "v"})
    assert chunk_parts({"data": [1], "is_final": True}) == (b"[1]", True, {})
    assert chunk_parts({"data": 1, "other": 2}) == (b'{"data":1,"other":2}', False, {})
    assert chunk_parts(b"\x00raw") == (b"\x00raw", False, {})
    assert chunk_parts("text") == (b"text", False, {})
    assert SeedStreamChunk is StreamChunk


def test_values_round_trip_and_keep_integers():
    for v in ["s", 5, 2.5, True, [1, 2], {"a": 1}, None]:
        assert decode_any(encode_any(v)) == v
    assert encode_any(5).value == b"5"
    assert encode_any(5).type_url == "type.googleapis.com/snakepit.integer"


def test_string_value_parameters_are_unwrapped():
    from google.protobuf import any_pb2, wrappers_pb2

    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value='{"a": [1, 2]}'))
    assert decode_any(packed) == {"a": [1, 2]}
    packed.Pack(wrappers_pb2.StringValue(value="plain text"))
    assert decode_any(packed) == "plain text"
    raw_json = any_pb2.Any(type_url="type.googleapis.com/google.protobuf.StringValue", value=b"[1,2]")
    assert decode_any(raw_json) == [1, 2]


class PlanSample(BaseAdapter):
    @tool
    def pos_only(self, a: int, /, b: int = 1) -> int:
        return a + b

    @tool
    async def coro(self, x: int) -> int:
        return x

    @tool
    def gen(self, n: int):
        yield from range(n)


def test_call_plans_keep_argument_checks_and_tool_kinds():
    import asyncio
    import concurrent.futures
    import json

    from snakepit_bridge._dispatch import Dispatcher
    from snakepit_bridge._proto import snakepit_bridge_pb2 as pb

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        d = Dispatcher(PlanSample(), None, pool, None)

        def run(name, **params):
            req = pb.ExecuteToolRequest(tool_name=name, parameters={k: encode_any(v) for k, v in params.items()})
            return asyncio.run(d.execute(req))

        # A positional-only parameter cannot be passed by name: the cached signature still binds.
        err = json.loads(run("pos_only", a=1).error_message)
        assert err["type"] == "InvalidArgumentsError" and "positional" in err["message"]
        assert d.plan(d.tools["pos_only"]).needs_bind
        assert not d.plan(d.tools["coro"]).needs_bind
        assert decode_any(run("coro", x=4).result) == 4
        assert decode_any(run("gen", n=3).result) == [0, 1, 2]
        err = json.loads(run("coro").error_message)
        assert err["type"] == "InvalidArgumentsError" and "'x'" in err["message"]
