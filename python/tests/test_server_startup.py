"""Worker start-up and shutdown: addresses, ready file, failures, thread safety, signals."""

import json
import signal
import subprocess
import sys
import time

import grpc

from conftest import SHOWCASE, start_worker, worker_env
from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._wire import encode_any


def _run(tmp_path, *argv, env=None, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "snakepit_bridge.server", *argv],
        env=worker_env(tmp_path, env),
        capture_output=True,
        timeout=timeout,
    )


def test_tcp_address_ready_file_holds_the_bound_loopback_address(tmp_path):
    w = start_worker(tmp_path, listen=["--address", "tcp:127.0.0.1:0"], extra_env={"SNAKEPIT_PROCESS_GROUP": "1"})
    try:
        r = w.stub.ExecuteTool(pb.ExecuteToolRequest(tool_name="process_info"), metadata=w.metadata, timeout=10)
        info = json.loads(r.result.value)
        assert info["pid"] == w.proc.pid and info["pgid"] == w.proc.pid  # SNAKEPIT_PROCESS_GROUP: own group
        host, port = w.ready_content[len("tcp:"):].rsplit(":", 1)
        assert w.ready_content.startswith("tcp:") and host == "127.0.0.1" and int(port) > 0
        assert w.stub.Ping(pb.PingRequest(message="x"), metadata=w.metadata).message == "pong: x"
    finally:
        w.stop()


def test_legacy_port_mode_writes_the_bare_port_and_binds_loopback(tmp_path):
    w = start_worker(tmp_path, listen=["--port", "0", "--snakepit-run-id", "abc1234", "--elixir-address", "unix:/nonexistent.sock"],
                     extra_env={"SNAKEPIT_HEARTBEAT_CONFIG": '{"enabled": false}'})
    try:
        assert w.ready_content.isdigit()
        # the run id reaches the adapter; an unreachable host only costs a warning
        r = w.stub.ExecuteTool(pb.ExecuteToolRequest(tool_name="process_info"), metadata=w.metadata, timeout=10)
        assert json.loads(r.result.value)["run_id"] == "abc1234"
        port_hex = f"{int(w.ready_content):04X}"
        bound = []
        for table in ("tcp", "tcp6"):
            with open(f"/proc/{w.proc.pid}/net/{table}") as f:
                rows = [line.split() for line in f.readlines()[1:]]
            bound += [r[1] for r in rows if r[3] == "0A" and r[1].endswith(":" + port_hex)]
        loopback = {f"0100007F:{port_hex}", f"0000000000000000FFFF00000100007F:{port_hex}"}
        assert bound and set(bound) <= loopback, bound
    finally:
        w.stop()


def test_import_failure_exits_1_with_a_message_and_no_ready_file(tmp_path):
    r = _run(tmp_path, "--adapter", "no_such_pkg.Adapter", "--address", f"unix:{tmp_path / 'w.sock'}")
    assert r.returncode == 1
    assert b"python adapter 'no_such_pkg.Adapter' could not be imported: ModuleNotFoundError" in r.stderr
    assert b"check PYTHONPATH" in r.stderr
    assert not (tmp_path / "w.ready").exists()
    assert r.stdout == b""


def test_initialize_failure_exits_1_with_the_reason(tmp_path):
    r = _run(tmp_path, "--adapter", "lifecycle_adapter.BrokenInitAdapter", "--address", f"unix:{tmp_path / 'w.sock'}")
    assert r.returncode == 1
    assert b"failed in initialize(): RuntimeError: no model file" in r.stderr
    assert not (tmp_path / "w.ready").exists()


def test_thread_safety_check_refuses_adapters_that_do_not_declare_it(tmp_path):
    r = _run(tmp_path, "--adapter", SHOWCASE, "--address", f"unix:{tmp_path / 'w.sock'}",
             "--mode", "threaded", "--max-workers", "4", "--thread-safety-check")
    assert r.returncode == 1 and b"__thread_safe__" in r.stderr


def test_health_check_of_a_missing_class_fails(tmp_path):
    r = _run(tmp_path, "--adapter", "snakepit_bridge.adapters.showcase.Nope", "--health-check")
    assert r.returncode == 1 and b"has no class 'Nope'" in r.stderr


def test_sigterm_ends_open_telemetry_streams_without_waiting_for_the_grace(tmp_path):
    w = start_worker(tmp_path, args=["--shutdown-grace-ms", "20000"])
    stream = w.stub.StreamTelemetry(iter(()), metadata=w.metadata)
    time.sleep(0.2)
    started = time.time()
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(10) == 0
    assert time.time() - started < 5
    try:
        list(stream)
    except grpc.RpcError:
        pass
    w.stop()


def test_sigterm_past_the_grace_period_still_exits(tmp_path):
    w = start_worker(tmp_path, args=["--shutdown-grace-ms", "200"])
    req = pb.ExecuteToolRequest(tool_name="sleep", parameters={"ms": encode_any(30000)})
    future = w.stub.ExecuteTool.future(req, metadata=w.metadata)
    time.sleep(0.3)
    started = time.time()
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(10) == 0
    assert time.time() - started < 5
    assert future.exception() is not None
    w.stop()
