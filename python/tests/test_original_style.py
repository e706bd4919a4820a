"""Adapters written for the original, on our worker server: execute_tool, returned generators, checks."""

import concurrent.futures
import json
import time

from conftest import HERE, start_worker
from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._wire import decode_any, encode_any

FIXTURES = str(HERE / "original_style")


def call(worker, tool, **args):
    req = pb.ExecuteToolRequest(tool_name=tool, parameters={k: encode_any(v) for k, v in args.items()})
    return worker.stub.ExecuteTool(req, metadata=worker.metadata, timeout=30)


def test_execute_tool_gets_every_call_with_the_session_context(tmp_path):
    w = start_worker(tmp_path, adapter="registry_adapter.RegistryAdapter", extra_env={"PYTHONPATH": FIXTURES})
    try:
        assert decode_any(call(w, "ping").result) == {"status": "ok", "message": "pong"}
        req = pb.ExecuteToolRequest(session_id="s9", tool_name="remember",
                                    parameters={"key": encode_any("k"), "value": encode_any(1)})
        assert decode_any(w.stub.ExecuteTool(req, metadata=w.metadata).result)["session_id"] == "s9"
        chunks = list(w.stub.ExecuteStreamingTool(
            pb.ExecuteToolRequest(tool_name="count_up", parameters={"n": encode_any(2)}, stream=True), metadata=w.metadata
        ))
        assert [c.chunk_id for c in chunks] == ["count_up-1", "count_up-2", "count_up-3"]
        assert [json.loads(c.data) for c in chunks[:2]] == [{"i": 1}, {"i": 2}]
        assert chunks[-1].is_final and chunks[-1].data == b""
        failed = call(w, "reserve", qty=3)
        assert not failed.success
        assert json.loads(failed.error_message)["type"] == "InventoryError"
    finally:
        w.stop()


def test_thread_safety_check_warns_about_concurrent_unguarded_calls(tmp_path):
    args = ["--mode", "threaded", "--max-workers", "4", "--thread-safety-check"]
    w = start_worker(tmp_path, adapter="registry_adapter.SharedCounterAdapter",
                     extra_env={"PYTHONPATH": FIXTURES, "SNAKEPIT_LOG_LEVEL": "warning"}, args=args)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            started = time.monotonic()
            guarded = list(pool.map(lambda _: call(w, "guarded_bump", delay=0.2), range(3)))
            serial_elapsed = time.monotonic() - started
            unguarded = list(pool.map(lambda _: call(w, "slow_bump", delay=0.5), range(2)))
        assert all(r.success for r in guarded + unguarded)
        # @thread_safe_method ran the three calls one after the other.
        assert serial_elapsed >= 0.6
    finally:
        w.stop()
    stderr = w.proc.stderr.read().decode()
    assert "Method 'slow_bump' accessed by 2 different threads concurrently" in stderr, stderr
    assert "Method 'guarded_bump' accessed by 2 different threads concurrently" not in stderr, stderr
