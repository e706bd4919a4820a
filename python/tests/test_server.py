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


def test_worker_exits_when_its_parent_is_not_the_host(tmp_path):
    w = start_worker(tmp_path, extra_env={"SNAKEPIT_PARENT_PID": "1"})
    assert w.proc.wait(10) == 0


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


def test_tools_see_their_session_and_the_callers_deadline(tmp_path):
    w = start_worker(tmp_path, adapter="lifecycle_adapter.LifecycleAdapter", extra_env={"MARKER_FILE": str(tmp_path / "m")})
    try:
        req = pb.ExecuteToolRequest(tool_name="remaining", session_id="s-1")
        session, left = decode_any(w.stub.ExecuteTool(req, metadata=w.metadata, timeout=5).result)
        assert session == "s-1"
        assert 0 < left <= 5
        session, left = decode_any(w.stub.ExecuteTool(req, metadata=w.metadata).result)
        assert left is None
    finally:
        w.proc.kill()
        w.proc.wait()
