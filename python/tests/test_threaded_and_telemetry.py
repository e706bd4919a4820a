"""ThreadSafeAdapter, @thread_safe_method and the telemetry API (in-process)."""

import threading

import pytest

from snakepit_bridge import ThreadSafeAdapter, telemetry, thread_safe_method, tool
from snakepit_bridge._servicer import apply_telemetry_control, telemetry_event_message
from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge.base_adapter import BaseAdapter as SeedBaseAdapter
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter as SeedThreadSafeAdapter


class Counter(ThreadSafeAdapter):
    __thread_safe__ = True

    def __init__(self):
        super().__init__()
        self.count = 0

    @thread_safe_method
    @tool(description="count up")
    def bump(self, by: int = 1) -> int:
        with self.acquire_lock():
            self.count += by
            return self.count

    @thread_safe_method
    @tool
    def gen(self, n: int):
        yield from range(n)


def test_seed_import_paths_name_the_same_classes():
    from snakepit_bridge import BaseAdapter

    assert SeedBaseAdapter is BaseAdapter and SeedThreadSafeAdapter is ThreadSafeAdapter


def test_thread_safe_method_keeps_tool_metadata_and_signature():
    tools = Counter().get_tools()
    assert tools["bump"].description == "count up"
    assert [(p.name, p.type, p.default) for p in tools["bump"].parameters] == [("by", "integer", 1)]
    assert tools["gen"].supports_streaming and tools["gen"].is_generator


def test_lock_serialises_shared_state_and_stats_count_requests():
    adapter = Counter()
    adapter.max_workers = 8
    threads = [threading.Thread(target=lambda: [adapter.bump() for _ in range(200)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert adapter.count == 1600
    assert list(adapter.gen(3)) == [0, 1, 2]
    stats = adapter.get_stats()
    assert stats["total_requests"] == 1601
    assert stats["active_requests"] == 0
    assert stats["max_workers"] == 8 and stats["thread_utilization"] == 0


def test_thread_locals_are_per_thread():
    adapter = Counter()
    adapter.set_thread_local("cache", {"a": 1})
    seen = {}
    t = threading.Thread(target=lambda: seen.update(other=adapter.get_thread_local("cache", "unset")))
    t.start()
    t.join()
    assert seen["other"] == "unset"
    assert adapter.get_thread_local("cache") == {"a": 1}
    adapter.clear_thread_local("cache")
    assert adapter.get_thread_local("cache") is None
    adapter.set_thread_local("x", 1)
    adapter.clear_thread_local()
    assert adapter.get_thread_local("x", 0) == 0


def test_acquire_lock_times_out_when_held_elsewhere():
    adapter = Counter()
    held, release = threading.Event(), threading.Event()

    def holder():
        with adapter.acquire_lock():
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    with pytest.raises(TimeoutError):
        with adapter.acquire_lock(timeout=0.05):
            pass
    release.set()
    t.join()


@pytest.fixture
def buffer():
    telemetry.BUFFER.drain()
    telemetry.BUFFER.apply_control(enabled=True, sampling_rate=1.0, allow=[], deny=[])
    yield telemetry.BUFFER
    telemetry.BUFFER.drain()
    telemetry.BUFFER.apply_control(enabled=True, sampling_rate=1.0, allow=[], deny=[])


def test_emit_and_span_record_events_with_correlation(buffer):
    token = telemetry.set_correlation_id("corr-1")
    try:
        telemetry.emit("model.inference", {"latency_ms": 45, "ratio": 0.5}, {"model": "m", "batch": 1})
        with pytest.raises(ValueError):
            with telemetry.span("outer", {"stage": "a"}):
                with telemetry.span("inner"):
                    pass
                raise ValueError("x")
    finally:
        telemetry.reset_correlation_id(token)
    assert telemetry.get_correlation_id() is None
    events = buffer.drain()
    assert [e.name for e in events] == ["model.inference", "outer.start", "inner.start", "inner.stop", "outer.exception"]
    assert all(e.correlation_id == "corr-1" for e in events)
    assert events[0].metadata == {"model": "m", "batch": "1"}
    assert events[-1].metadata["error_type"] == "ValueError" and events[-1].measurements["duration"] >= 0
    msg = telemetry_event_message(events[0])
    assert list(msg.event_parts) == ["model", "inference"]
    assert msg.measurements["latency_ms"].int_value == 45 and msg.measurements["ratio"].float_value == 0.5


def test_controls_toggle_filter_and_sample(buffer):
    apply_telemetry_control(pb.TelemetryControl(toggle=pb.TelemetryToggle(enabled=False)))
    assert telemetry.emit("a.b") is False
    apply_telemetry_control(pb.TelemetryControl(toggle=pb.TelemetryToggle(enabled=True)))
    apply_telemetry_control(pb.TelemetryControl(filter=pb.TelemetryEventFilter(allow=["python.*"], deny=["python.noisy*"])))
    assert telemetry.emit("python.call.stop") is True
    assert telemetry.emit("python.noisy.x") is False
    assert telemetry.emit("other.event") is False
    apply_telemetry_control(pb.TelemetryControl(filter=pb.TelemetryEventFilter()))
    apply_telemetry_control(
        pb.TelemetryControl(sampling=pb.TelemetrySamplingUpdate(sampling_rate=0.0, event_patterns=["python.*"]))
    )
    assert telemetry.emit("python.call.stop") is False
    assert telemetry.emit("custom.event") is True


def test_full_buffer_drops_instead_of_blocking(buffer):
    accepted = sum(telemetry.emit("e") for _ in range(telemetry.BUFFER_CAPACITY + 10))
    assert accepted == telemetry.BUFFER_CAPACITY
    assert buffer.dropped >= 10
