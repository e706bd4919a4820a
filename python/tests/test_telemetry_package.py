"""The telemetry package: stream queue, backends, drop reports, trace context (in-process)."""

import io
import json

import pytest

from snakepit_bridge import telemetry
from snakepit_bridge.telemetry import backends, stream
from snakepit_bridge._servicer import telemetry_event_message


@pytest.fixture
def buffer():
    telemetry.BUFFER.drain()
    telemetry.BUFFER.take_dropped()
    yield telemetry.BUFFER
    telemetry.BUFFER.drain()
    telemetry.BUFFER.take_dropped()
    telemetry.set_backend(telemetry.BUFFER)


def test_the_package_keeps_the_public_names_of_the_module():
    for name in ["emit", "span", "new_correlation_id", "set_correlation_id", "get_correlation_id",
                 "reset_correlation_id", "TelemetryEventRecord", "BUFFER", "BUFFER_CAPACITY", "otel_span"]:
        assert hasattr(telemetry, name), name
    assert isinstance(telemetry.BUFFER, stream.TelemetryBuffer)
    assert telemetry.BUFFER_CAPACITY == stream.BUFFER_CAPACITY == 1024


def test_drops_are_counted_and_reported_once_as_an_event(buffer):
    for _ in range(telemetry.BUFFER_CAPACITY + 25):
        telemetry.emit("burst.event")
    assert buffer.take_dropped() == 25
    assert buffer.take_dropped() == 0
    record = stream.dropped_record(25, 1)
    msg = telemetry_event_message(record)
    assert list(msg.event_parts) == ["python", "telemetry", "dropped"]
    assert msg.measurements["dropped"].int_value == 25
    assert stream.dropped_record(0, 1) is None


def test_the_stderr_backend_writes_one_json_line_per_event(buffer):
    out = io.StringIO()
    telemetry.set_backend(backends.StderrBackend(out))
    assert telemetry.emit("model.inference", {"ms": 3}, {"model": "m"}, correlation_id="c") is True
    event = json.loads(out.getvalue())
    assert event["event"] == "model.inference" and event["measurements"] == {"ms": 3}
    assert event["metadata"] == {"model": "m"} and event["correlation_id"] == "c"
    assert len(buffer) == 0


def test_the_trace_context_is_per_call_and_otel_span_is_a_no_op_without_the_api():
    token = telemetry.set_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    try:
        assert telemetry.get_traceparent().startswith("00-0af7")
        with telemetry.otel_span("x") as s:
            try:
                import opentelemetry  # noqa: F401
            except ImportError:
                assert s is None
    finally:
        token.var.reset(token)
    assert telemetry.get_traceparent() is None


def test_a_call_builds_no_event_while_the_host_listens_to_none(buffer):
    import asyncio
    import concurrent.futures

    from snakepit_bridge import BaseAdapter, tool
    from snakepit_bridge._dispatch import Dispatcher
    from snakepit_bridge._proto import snakepit_bridge_pb2 as pb

    class Noop(BaseAdapter):
        @tool
        def noop(self) -> None:
            return None

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        d = Dispatcher(Noop(), None, pool, None, "w1")
        request = pb.ExecuteToolRequest(tool_name="noop")
        try:
            buffer.apply_control(enabled=False)
            assert telemetry.recording() is False
            assert asyncio.run(d.execute(request)).success
            assert len(buffer) == 0 and buffer.take_dropped() == 0
            buffer.apply_control(enabled=True)
            assert asyncio.run(d.execute(request)).success
        finally:
            buffer.apply_control(enabled=True)
    events = buffer.drain()
    assert [e.name for e in events] == ["python.call.start", "python.call.stop"]
    assert events[1].metadata["worker_id"] == "w1"


def test_reinitialize_empties_the_queue_and_reads_the_backend_again(buffer, monkeypatch):
    telemetry.emit("before.fork")
    monkeypatch.setenv("SNAKEPIT_TELEMETRY_BACKEND", "stderr")
    try:
        telemetry.reinitialize()
        assert len(telemetry.BUFFER) == 0
        assert isinstance(telemetry._backend, backends.StderrBackend)
    finally:
        monkeypatch.delenv("SNAKEPIT_TELEMETRY_BACKEND")
        telemetry.reinitialize()
    assert telemetry._backend is telemetry.BUFFER
