"""Python -> host calls and tool registration, against an in-test fake host server."""

import time

import grpc
import pytest

from conftest import TOKEN, start_worker
from snakepit_bridge import HostBridgeUnavailableError, HostToolError, SessionContext
from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._wire import decode_any, encode_any


def test_call_elixir_tool_reaches_the_host_with_token_and_session(fake_host):
    ctx = SessionContext("s-9", host_address=fake_host.address, token=TOKEN)
    assert ctx.call_elixir_tool("double", {"x": 21}) == 42
    assert ctx.call_elixir_tool("double", x=4, options={"timeout": 2000}) == 8
    assert ctx.call_elixir_tool("blob") == b"\x00\x01"
    assert fake_host.calls[0] == ("s-9", "double", {"x": 21})
    assert sorted(ctx.elixir_tools) == ["double", "explode"]
    assert ctx.elixir_tools["double"](x=5) == 10


def test_host_tool_failure_and_missing_token_raise(fake_host):
    ctx = SessionContext("s", host_address=fake_host.address, token=TOKEN)
    with pytest.raises(HostToolError, match="explode"):
        ctx.call_elixir_tool("explode")
    with pytest.raises(grpc.RpcError) as e:
        SessionContext("s", host_address=fake_host.address, token="wrong").call_elixir_tool("double", {"x": 1})
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_call_without_host_address_names_the_missing_configuration():
    with pytest.raises(HostBridgeUnavailableError, match="--elixir-address"):
        SessionContext("s").call_elixir_tool("double", {"x": 1})


def test_worker_registers_its_tools_once_and_tools_call_the_host(tmp_path, fake_host):
    w = start_worker(
        tmp_path,
        adapter="lifecycle_adapter.HostCallingAdapter",
        args=["--elixir-address", fake_host.address, "--worker-id", "w-7"],
        extra_env={"SNAKEPIT_HEARTBEAT_CONFIG": '{"enabled": true, "interval_ms": 50}'},
    )
    try:
        # Registration happens before the ready file is written.
        assert len(fake_host.registrations) == 1
        reg = fake_host.registrations[0]
        assert reg.worker_id == "w-7"
        assert {t.name for t in reg.tools} == {"ask_host", "ask_host_async", "traced"}
        for tool in ("ask_host", "ask_host_async"):
            req = pb.ExecuteToolRequest(
                tool_name=tool, session_id="s-1", parameters={"name": encode_any("double"), "args": encode_any({"x": 3})}
            )
            r = w.stub.ExecuteTool(req, metadata=w.metadata, timeout=10)
            assert r.success, r.error_message
            assert decode_any(r.result) == 6
        assert [c[0] for c in fake_host.calls] == ["s-1", "s-1"]
        assert len(fake_host.registrations) == 1  # never a host round trip per call
        deadline = time.time() + 5
        while fake_host.heartbeats == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert fake_host.heartbeats >= 1
    finally:
        w.stop()


def test_host_address_may_come_from_the_environment(tmp_path, fake_host):
    w = start_worker(
        tmp_path,
        adapter="lifecycle_adapter.HostCallingAdapter",
        extra_env={"SNAKEPIT_GRPC_ADDRESS": fake_host.address, "SNAKEPIT_HEARTBEAT_CONFIG": '{"enabled": false}'},
    )
    try:
        assert len(fake_host.registrations) == 1
        assert fake_host.heartbeats == 0
    finally:
        w.stop()
