"""The worker server over a real Unix socket: calls, errors, streaming, token, signals."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

from conftest import start_worker
from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._wire import decode_any, encode_any

SHOWCASE = "snakepit_bridge.adapters.showcase.ShowcaseAdapter"


def call(w, tool, **params):
    req = pb.ExecuteToolRequest(tool_name=tool, parameters={k: encode_any(v) for k, v in params.items()})
    return w.stub.ExecuteTool(req, metadata=w.metadata, timeout=30)


def test_ping_echo_add(worker):
    assert worker.stub.Ping(pb.PingRequest(message="hi"), metadata=worker.metadata).message == "pong: hi"
    r = call(worker, "echo", id=7, text="x")
    assert r.success and decode_any(r.result) == {"id": 7, "text": "x"}
    r = call(worker, "add", a=2, b=3)
    assert decode_any(r.result) == 5 and isinstance(decode_any(r.result), int)


def test_exception_becomes_structured_error(worker):
    r = call(worker, "fail", message="kaboom")
    assert not r.success
    err = json.loads(r.error_message)
    assert err["type"] == "ValueError"
    assert err["message"] == "kaboom"
    assert "Traceback" in err["traceback"]
    assert err["stacktrace"] and err["context"]["tool"] == "fail"


def test_unknown_tool_and_bad_arguments_are_named(worker):
    err = json.loads(call(worker, "nope").error_message)
    assert err["type"] == "UnknownToolError"
    assert "nope" in err["message"] and "echo" in err["message"]
    err = json.loads(call(worker, "add", a=1, c=2).error_message)
    assert err["type"] == "InvalidArgumentsError"
    assert "'c'" in err["message"] and "a: float" in err["message"]


def test_streaming_in_order_with_final_marker(worker):
    req = pb.ExecuteToolRequest(tool_name="stream_progress", parameters={"steps": encode_any(3), "delay_ms": encode_any(10)})
    chunks = list(worker.stub.ExecuteStreamingTool(req, metadata=worker.metadata, timeout=30))
    assert [c.chunk_id for c in chunks] == ["stream_progress-1", "stream_progress-2", "stream_progress-3", "stream_progress-4"]
    assert [json.loads(c.data)["step"] for c in chunks[:3]] == [1, 2, 3]
    assert chunks[-1].is_final and chunks[-1].data == b""
    assert not any(c.is_final for c in chunks[:3])


def test_binary_round_trip(worker):
    blob = os.urandom(1 << 20)
    req = pb.ExecuteToolRequest(tool_name="echo_bytes", binary_parameters={"data": blob})
    r = worker.stub.ExecuteTool(req, metadata=worker.metadata, timeout=30)
    assert r.success and r.binary_result == blob


def test_call_without_token_is_unauthenticated(worker):
    with pytest.raises(grpc.RpcError) as e:
        worker.stub.Ping(pb.PingRequest())
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        worker.stub.ExecuteTool(pb.ExecuteToolRequest(tool_name="ping"), metadata=[("x-snakepit-token", "wrong")])
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


# Every RPC of the service and a request for it: the token interceptor guards them all.
_EVERY_RPC = [
    ("Ping", lambda: pb.PingRequest()),
    ("InitializeSession", lambda: pb.InitializeSessionRequest(session_id="s")),
    ("CleanupSession", lambda: pb.CleanupSessionRequest(session_id="s")),
    ("GetSession", lambda: pb.GetSessionRequest(session_id="s")),
    ("Heartbeat", lambda: pb.HeartbeatRequest()),
    ("ExecuteTool", lambda: pb.ExecuteToolRequest(tool_name="ping")),
    ("ExecuteStreamingTool", lambda: pb.ExecuteToolRequest(tool_name="ping")),
    ("RegisterTools", lambda: pb.RegisterToolsRequest()),
    ("GetExposedElixirTools", lambda: pb.GetExposedElixirToolsRequest()),
    ("ExecuteElixirTool", lambda: pb.ExecuteElixirToolRequest(tool_name="t")),
    ("StreamTelemetry", lambda: iter([pb.TelemetryControl()])),
]


@pytest.mark.parametrize("method,request_of", _EVERY_RPC, ids=[m for m, _ in _EVERY_RPC])
def test_every_rpc_refuses_a_missing_or_wrong_token(worker, method, request_of):
    call = getattr(worker.stub, method)
    for metadata in ([], [("x-snakepit-token", "wrong")]):
        with pytest.raises(grpc.RpcError) as e:
            reply = call(request_of(), metadata=metadata, timeout=10)
            if method in ("ExecuteStreamingTool", "StreamTelemetry"):
                list(reply)  # a stream's status arrives when it is read
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
        assert "x-snakepit-token" in e.value.details()


def test_async_tools_and_generators_and_mid_stream_failure(tmp_path):
    w = start_worker(tmp_path, adapter="lifecycle_adapter.LifecycleAdapter", extra_env={"MARKER_FILE": str(tmp_path / "m")})
    try:
        assert decode_any(call(w, "async_add", a=1, b=2).result) == 3
        req = pb.ExecuteToolRequest(tool_name="countdown", parameters={"n": encode_any(3)})
        data = [c.data for c in w.stub.ExecuteStreamingTool(req, metadata=w.metadata, timeout=30)]
        assert data == [b"3", b"2", b"1", b""]
        req = pb.ExecuteToolRequest(tool_name="broken_stream")
        it = w.stub.ExecuteStreamingTool(req, metadata=w.metadata, timeout=30)
        assert next(it).data == b"1"
        with pytest.raises(grpc.RpcError) as e:
            next(it)
        assert e.value.code() == grpc.StatusCode.INTERNAL
        assert json.loads(e.value.details())["message"] == "stream broke"
    finally:
        w.proc.kill()
        w.proc.wait()


def test_sigterm_finishes_in_flight_call_runs_cleanup_and_exits_zero(tmp_path):
    marker = tmp_path / "m"
    w = start_worker(tmp_path, adapter="lifecycle_adapter.LifecycleAdapter", extra_env={"MARKER_FILE": str(marker)})
    result = {}

    def slow_call():
        result["r"] = call(w, "slow", ms=700)

    t = threading.Thread(target=slow_call)
    t.start()
    time.sleep(0.3)
    w.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert w.proc.wait(10) == 0
    assert decode_any(result["r"].result) == "done"
    assert marker.read_text() == "cleaned"


def test_health_check_exit_codes():
    ok = subprocess.run([sys.executable, "-m", "snakepit_bridge.server", "--adapter", SHOWCASE, "--health-check"],
                        capture_output=True, timeout=60)
    assert ok.returncode == 0
    bad = subprocess.run([sys.executable, "-m", "snakepit_bridge.server", "--adapter", "nope_mod.X", "--health-check"],
                         capture_output=True, timeout=60)
    assert bad.returncode == 1
    assert b"nope_mod" in bad.stderr and b"PYTHONPATH" in bad.stderr




def _overlapping_spans(tmp_path, args):
    tmp_path.mkdir()
    w = start_worker(tmp_path, adapter="lifecycle_adapter.LifecycleAdapter", extra_env={"MARKER_FILE": str(tmp_path / "m")}, args=args)
    spans = []
    try:
        threads = [threading.Thread(target=lambda: spans.append(decode_any(call(w, "span", ms=400).result))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        w.proc.kill()
        w.proc.wait()
    (s1, e1), (s2, e2) = sorted(spans)
    return s2 < e1


def test_thread_mode_runs_calls_concurrently_and_process_mode_one_at_a_time(tmp_path):
    assert _overlapping_spans(tmp_path / "t", ["--mode", "threaded", "--max-workers", "2"]) is True
    assert _overlapping_spans(tmp_path / "p", []) is False


GRPC_TIMEOUT_ROUNDING_S = 0.05


def test_tools_see_their_session_and_the_callers_deadline(tmp_path):
    w = start_worker(tmp_path, adapter="lifecycle_adapter.LifecycleAdapter", extra_env={"MARKER_FILE": str(tmp_path / "m")})
    try:
        req = pb.ExecuteToolRequest(tool_name="remaining", session_id="s-1")
        session, left = decode_any(w.stub.ExecuteTool(req, metadata=w.metadata, timeout=5).result)
        assert session == "s-1"
        # The caller's 5 s budget arrives in the grpc-timeout header, which gRPC rounds up when
        # encoding it (a deadline is never made earlier), so the tool may see a few ms above 5.
        assert 4.0 < left <= 5.0 + GRPC_TIMEOUT_ROUNDING_S
        session, left = decode_any(w.stub.ExecuteTool(req, metadata=w.metadata).result)
        assert left is None
    finally:
        w.proc.kill()
        w.proc.wait()


def test_missing_argument_is_named_with_accepted_parameters(worker):
    err = json.loads(call(worker, "add", a=1).error_message)
    assert err["type"] == "InvalidArgumentsError"
    assert "missing" in err["message"] and "'b'" in err["message"] and "b: float" in err["message"]
    assert err["context"] == {"tool": "add", "session_id": "", "argument_keys": ["a"]}


def test_results_keep_their_json_types(worker):
    r = call(worker, "noop")
    assert r.success and decode_any(r.result) is None and r.execution_time_ms >= 0
    r = call(worker, "add", a=1.5, b=2)
    assert decode_any(r.result) == 3.5 and r.result.type_url == "type.googleapis.com/snakepit.float"
    r = call(worker, "ping")
    assert decode_any(r.result)["message"] == "pong"
    # A StringValue-wrapped JSON parameter is accepted too (the type_url is only a hint).
    req = pb.ExecuteToolRequest(tool_name="echo", parameters={"v": encode_any([1, "two"])})
    req.parameters["v"].type_url = "type.googleapis.com/google.protobuf.StringValue"
    assert decode_any(worker.stub.ExecuteTool(req, metadata=worker.metadata).result) == {"v": [1, "two"]}


def test_non_streaming_tool_streams_one_final_chunk_and_unknown_stream_is_not_found(worker):
    req = pb.ExecuteToolRequest(tool_name="add", parameters={"a": encode_any(2), "b": encode_any(2)})
    chunks = list(worker.stub.ExecuteStreamingTool(req, metadata=worker.metadata, timeout=10))
    assert [(c.chunk_id, c.data, c.is_final) for c in chunks] == [("add-1", b"4", True)]
    with pytest.raises(grpc.RpcError) as e:
        list(worker.stub.ExecuteStreamingTool(pb.ExecuteToolRequest(tool_name="nope"), metadata=worker.metadata))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert json.loads(e.value.details())["type"] == "UnknownToolError"


def test_chunks_arrive_as_they_are_produced(worker):
    req = pb.ExecuteToolRequest(tool_name="stream_progress", parameters={"steps": encode_any(3), "delay_ms": encode_any(300)})
    arrivals = []
    for c in worker.stub.ExecuteStreamingTool(req, metadata=worker.metadata, timeout=30):
        if c.data:
            arrivals.append((time.time_ns(), json.loads(c.data)["produced_at_ns"]))
    # chunk i reached us before chunk i+1 was produced (no batching)
    assert arrivals[0][0] < arrivals[1][1] and arrivals[1][0] < arrivals[2][1]


def test_sessions_are_tracked_and_host_only_rpcs_are_unimplemented(worker):
    md = worker.metadata
    resp = worker.stub.InitializeSession(pb.InitializeSessionRequest(session_id="s1", metadata={"u": "1"}), metadata=md)
    assert resp.success and "echo" in resp.available_tools
    assert resp.available_tools["fail"].parameters[0].default_value.value == b'"boom"'
    assert worker.stub.InitializeSession(pb.InitializeSessionRequest(session_id="s1"), metadata=md).success
    got = worker.stub.GetSession(pb.GetSessionRequest(session_id="s1"), metadata=md)
    assert got.metadata == {"u": "1"} and got.tool_count > 5
    assert worker.stub.Heartbeat(pb.HeartbeatRequest(session_id="s1"), metadata=md).session_valid
    assert worker.stub.CleanupSession(pb.CleanupSessionRequest(session_id="s1"), metadata=md).resources_cleaned == 1
    assert worker.stub.CleanupSession(pb.CleanupSessionRequest(session_id="s1"), metadata=md).success
    with pytest.raises(grpc.RpcError) as e:
        worker.stub.GetSession(pb.GetSessionRequest(session_id="s1"), metadata=md)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        worker.stub.ExecuteElixirTool(pb.ExecuteElixirToolRequest(tool_name="x"), metadata=md)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "host" in e.value.details()


def test_envelopes_control_the_final_marker_and_cancel_closes_the_generator(tmp_path):
    marker = tmp_path / "closed"
    w = start_worker(tmp_path, adapter="lifecycle_adapter.GeneratorCloseAdapter", extra_env={"MARKER_FILE": str(marker)})
    try:
        chunks = list(w.stub.ExecuteStreamingTool(pb.ExecuteToolRequest(tool_name="envelope"), metadata=w.metadata))
        assert [(c.data, c.is_final, dict(c.metadata)) for c in chunks] == [
            (b"first", False, {"k": "v"}),
            (b'{"last":true}', True, {}),
        ]
        it = w.stub.ExecuteStreamingTool(pb.ExecuteToolRequest(tool_name="endless"), metadata=w.metadata)
        assert json.loads(next(it).data) == {"i": 1}
        it.cancel()
        deadline = time.time() + 5
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.02)
        assert marker.read_text() == "closed"
        # the worker is still serving
        assert w.stub.Ping(pb.PingRequest(), metadata=w.metadata).message == "pong"
    finally:
        w.stop()


def test_cancelled_unary_call_sets_the_context_flag(tmp_path):
    marker = tmp_path / "cancelled"
    w = start_worker(tmp_path, adapter="lifecycle_adapter.GeneratorCloseAdapter", extra_env={"MARKER_FILE": str(marker)})
    try:
        future = w.stub.ExecuteTool.future(pb.ExecuteToolRequest(tool_name="wait_for_cancel"), metadata=w.metadata)
        time.sleep(0.3)
        assert not marker.exists()
        future.cancel()
        deadline = time.time() + 10
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.02)
        assert marker.read_text() == "cancelled"
        assert w.stub.Ping(pb.PingRequest(), metadata=w.metadata).message == "pong"
    finally:
        w.stop()


def test_telemetry_stream_carries_call_events_and_custom_events(tmp_path, fake_host):
    w = start_worker(tmp_path, adapter="lifecycle_adapter.HostCallingAdapter")
    try:
        controls = iter([pb.TelemetryControl(filter=pb.TelemetryEventFilter(deny=["traced.work.start"]))])
        stream = w.stub.StreamTelemetry(controls, metadata=w.metadata, timeout=10)
        req = pb.ExecuteToolRequest(tool_name="traced", parameters={"n": encode_any(3)}, metadata={"correlation_id": "c-42"})
        time.sleep(0.2)  # let the filter arrive first
        assert decode_any(w.stub.ExecuteTool(req, metadata=w.metadata).result) == 3
        names = []
        for event in stream:
            names.append(".".join(event.event_parts))
            if names[-1] == "traced.custom":
                assert event.correlation_id == "c-42" and event.measurements["n"].int_value == 3
            if names[-1] == "python.call.stop":
                assert event.metadata["command"] == "traced" and event.measurements["duration"].int_value > 0
                break
        stream.cancel()
        assert names == ["python.call.start", "traced.custom", "traced.work.stop", "python.call.stop"]
    finally:
        w.stop()
