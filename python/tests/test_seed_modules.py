"""The public modules an adapter written for the original imports, with the original's names."""

import asyncio
import importlib
import threading
import time
import warnings

import pytest


@pytest.mark.parametrize(
    "module, names",
    [
        ("snakepit_bridge", ["BaseAdapter", "tool", "SessionContext", "StreamChunk"]),
        ("snakepit_bridge.base_adapter", ["BaseAdapter", "tool", "ToolMetadata"]),
        ("snakepit_bridge.base_adapter_threaded", ["ThreadSafeAdapter", "thread_safe_method", "ThreadLocalStorage",
                                                   "RequestTracker", "require_thread_safe", "validate_thread_safety", "tool"]),
        ("snakepit_bridge.session_context", ["SessionContext"]),
        ("snakepit_bridge.serialization", ["TypeSerializer", "BINARY_THRESHOLD"]),
        ("snakepit_bridge.heartbeat", ["HeartbeatConfig", "HeartbeatClient"]),
        ("snakepit_bridge.logging_config", ["configure_logging", "get_logger"]),
        ("snakepit_bridge.zero_copy", ["ZeroCopyRef"]),
        ("snakepit_bridge.thread_safety_checker", ["ThreadSafetyChecker", "enable_checking", "disable_checking",
                                                   "get_global_checker", "check_thread_safe",
                                                   "require_thread_safe_adapter", "validate_adapter_thread_safety",
                                                   "check_common_pitfalls", "print_thread_safety_report"]),
    ],
)
def test_seed_public_names_exist(module, names):
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


def test_session_context_takes_the_originals_signature():
    from snakepit_bridge.session_context import SessionContext

    stub = object()
    ctx = SessionContext(stub, "s-1")
    assert (ctx.stub, ctx.session_id) == (stub, "s-1")
    assert repr(ctx) == "SessionContext(session_id='s-1')"
    assert SessionContext("s-2").session_id == "s-2"


def test_original_positional_tool_description():
    from snakepit_bridge.base_adapter import BaseAdapter, tool

    class A(BaseAdapter):
        @tool("Search things")
        def search(self, q: str) -> list:
            return [q]

    assert A().get_tools()["search"].description == "Search things"
    assert A().call_tool("search", q="x") == ["x"]


def test_heartbeat_config_merges_mappings_and_client_counts_misses():
    from snakepit_bridge.heartbeat import HeartbeatClient, HeartbeatConfig

    cfg = HeartbeatConfig.from_mapping({"intervalMs": "10", "dependent": "false", "unknown": 1, "max_missed_heartbeats": 2})
    assert (cfg.interval_ms, cfg.dependent, cfg.max_missed_heartbeats, cfg.enabled) == (10, False, 2, True)

    class FailingStub:
        def Heartbeat(self, request, timeout=None, metadata=None):
            raise RuntimeError("host gone")

    fired = []

    async def on_threshold(missed):
        fired.append(missed)

    async def run():
        client = HeartbeatClient(FailingStub(), "s", cfg, on_threshold_exceeded=on_threshold)
        assert client.start()
        for _ in range(200):
            if fired:
                break
            await asyncio.sleep(0.01)
        await client.stop()
        return client.status()

    status = asyncio.run(run())
    assert fired and fired[0] == 2
    assert status["missed_heartbeats"] >= 2 and status["succeeded"] == 0


def test_thread_safe_method_serialises_calls_of_the_method():
    from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method

    class Counter(ThreadSafeAdapter):
        __thread_safe__ = True

        def __init__(self):
            super().__init__()
            self.inside = 0
            self.max_inside = 0

        @thread_safe_method
        def bump(self):
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
            time.sleep(0.01)
            self.inside -= 1

    c = Counter()
    # Every thread stays alive until all have called, so no two share a thread ident.
    all_called = threading.Barrier(8)

    def call_then_wait():
        c.bump()
        all_called.wait(timeout=60)

    threads = [threading.Thread(target=call_then_wait) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.max_inside == 1
    stats = c.get_stats()
    assert stats["total_requests"] == 8 and stats["tracker"]["total_requests"] == 8
    assert c._tracker.get_stats()["threads_seen"] == 8  # the original's attribute name
    assert Counter.bump.__thread_safe__ is True


def test_checker_warns_on_concurrent_access_and_trusts_serialised_methods():
    from snakepit_bridge.thread_safety_checker import ThreadSafetyChecker

    checker = ThreadSafetyChecker(enabled=True)
    barrier = threading.Barrier(2)

    def call(serialized):
        with checker.guard("predict", serialized=serialized):
            barrier.wait(timeout=5)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=call, args=(False,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert any("Method 'predict' accessed by 2 different threads concurrently" in str(w.message) for w in caught)
    assert checker.get_report()["concurrent_accesses"] == {"predict": 2}
    strict = ThreadSafetyChecker(enabled=True, strict_mode=True)
    assert strict.check_library_safety({"os"}) == []
    with pytest.raises(RuntimeError, match="pandas"):
        strict.check_library_safety({"pandas"})


def test_zero_copy_ref_round_trips_its_payload():
    from snakepit_bridge.zero_copy import ZeroCopyRef, is_zero_copy_payload

    payload = {"kind": "dlpack", "ref": "r1", "device": "cpu", "dtype": "float32", "shape": [2, 3], "bytes": 24}
    ref = ZeroCopyRef.from_payload(payload)
    assert (ref.kind, ref.shape, ref.bytes) == ("dlpack", [2, 3], 24)
    assert ref.to_payload() == payload
    assert is_zero_copy_payload(payload) and not is_zero_copy_payload({"kind": "x"})


def test_protobuf_6_gencode_notice_for_our_stubs_is_silenced():
    import snakepit_bridge._proto  # noqa: F401 - installs the filter

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        import snakepit_bridge._proto as proto

        importlib.reload(proto)  # installs the stubs' filter in front of "default"
        warnings.warn(
            "Protobuf gencode version 5.28.1 is exactly one major version older than the runtime version 6.31.1 "
            "at snakepit_bridge/_proto/snakepit_bridge.proto. Please update the gencode.",
            UserWarning,
        )
    assert caught == []
