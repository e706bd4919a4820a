"""Python-side telemetry: ``emit``, ``span``, ``otel_span`` and correlation ids, streamed to the host.

Events go into a bounded queue (``stream.TelemetryBuffer``, 1 024 events; when full, new
events are dropped and counted rather than blocking the tool). The worker server drains it
over the ``StreamTelemetry`` RPC, through which the host can also toggle telemetry, set a
sampling rate and allow/deny event globs. Event names are dotted (``python.call.stop``); on
the wire they become ``event_parts``. ``SNAKEPIT_TELEMETRY_BACKEND=stderr`` writes JSON lines
to stderr instead (see ``backends``).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
import uuid
from typing import Any, Dict, Iterator, Mapping, Optional, Protocol

from .backends import GrpcBackend, StderrBackend
from .stream import BUFFER_CAPACITY, TelemetryBuffer, TelemetryEventRecord

__all__ = [
    "BUFFER",
    "BUFFER_CAPACITY",
    "TelemetryBuffer",
    "TelemetryEventRecord",
    "emit",
    "get_correlation_id",
    "get_traceparent",
    "new_correlation_id",
    "otel_span",
    "recording",
    "reinitialize",
    "reset_correlation_id",
    "set_backend",
    "set_correlation_id",
    "set_traceparent",
    "span",
]

_correlation_id: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("snakepit_correlation_id", default=None)
_traceparent: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("snakepit_traceparent", default=None)

BUFFER: TelemetryBuffer = GrpcBackend()
"""The queue the worker's ``StreamTelemetry`` drains."""


class Backend(Protocol):
    """Where emitted events go: ``GrpcBackend`` (the default), ``StderrBackend`` or your own.

    A backend may also have a ``recording`` attribute; while it is False, ``emit`` returns at once.
    """

    def push_raw(
        self, name: str, measurements: Dict[str, Any], metadata: Dict[str, str], timestamp_ns: int, correlation_id: str
    ) -> bool:
        """Take one event; False when it was filtered out or dropped."""
        ...


def _backend_from_env() -> Backend:
    return StderrBackend() if os.environ.get("SNAKEPIT_TELEMETRY_BACKEND", "").lower() == "stderr" else BUFFER


_backend: Backend = _backend_from_env()


def set_backend(backend: Backend) -> None:
    """Send events to ``backend`` (``BUFFER``, a ``StderrBackend``, or an object with ``push_raw``).

    A backend may have a ``recording`` attribute; while it is False, ``emit`` returns at once.
    """
    global _backend
    _backend = backend


def recording() -> bool:
    """Whether events are recorded now (False while the host listens to none).

    Callers on a hot path check it before building an event's measurements and metadata.
    """
    on: bool = getattr(_backend, "recording", True)
    return on


def reinitialize() -> None:
    """Start over with an empty queue and the backend ``SNAKEPIT_TELEMETRY_BACKEND`` names.

    A worker forked from a zygote calls it once its own environment is set, so that it
    neither streams events the zygote had queued nor keeps the zygote's backend choice.
    """
    global BUFFER, _backend
    BUFFER = GrpcBackend()
    _backend = _backend_from_env()


def emit(
    event: str,
    measurements: Optional[Mapping[str, Any]] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    correlation_id: Optional[str] = None,
) -> bool:
    """Record an event (``"model.inference"``) with numeric/string measurements and metadata.

    Never blocks: returns False when the event was filtered, sampled out or dropped, and
    costs one attribute check while the host listens to no Python event.
    """
    backend = _backend
    if not getattr(backend, "recording", True):
        return False
    return backend.push_raw(
        event,
        dict(measurements) if measurements else {},
        {str(k): str(v) for k, v in metadata.items()} if metadata else {},
        time.time_ns(),
        correlation_id or _correlation_id.get() or "",
    )


@contextlib.contextmanager
def span(name: str, metadata: Optional[Mapping[str, Any]] = None) -> Iterator[None]:
    """Time a block: emits ``<name>.start``, then ``<name>.stop`` or ``<name>.exception``.

    Stop and exception events carry ``duration`` in nanoseconds; spans nest freely.
    """
    if not recording():
        yield
        return
    meta = dict(metadata or {})
    emit(f"{name}.start", {"system_time": time.time_ns()}, meta)
    started = time.monotonic_ns()
    try:
        yield
    except BaseException as exc:
        emit(f"{name}.exception", {"duration": time.monotonic_ns() - started}, {**meta, "error_type": type(exc).__name__})
        raise
    emit(f"{name}.stop", {"duration": time.monotonic_ns() - started}, meta)


@contextlib.contextmanager
def otel_span(name: str, attributes: Optional[Mapping[str, Any]] = None) -> Iterator[Any]:
    """An OpenTelemetry span that is a child of the host's call span (W3C ``traceparent``).

    Uses ``opentelemetry-api`` when it is installed and does nothing when it is not (the host
    records Python's call spans from the telemetry events either way).
    """
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        yield None
        return
    parent = _traceparent.get()
    ctx = TraceContextTextMapPropagator().extract({"traceparent": parent}) if parent else None
    tracer = trace.get_tracer("snakepit_bridge")
    with tracer.start_as_current_span(name, context=ctx, attributes=dict(attributes or {})) as s:
        yield s


def new_correlation_id() -> str:
    """Return a fresh correlation id (it is not set; see ``set_correlation_id``)."""
    return uuid.uuid4().hex


def set_correlation_id(correlation_id: Optional[str]) -> contextvars.Token[Optional[str]]:
    """Set the correlation id of the current call (events emitted from here carry it)."""
    return _correlation_id.set(correlation_id)


def get_correlation_id() -> Optional[str]:
    """The correlation id of the current call, if any."""
    return _correlation_id.get()


def reset_correlation_id(token: Optional[contextvars.Token[Optional[str]]] = None) -> None:
    """Restore the previous correlation id (with a token from ``set``) or clear it."""
    if token is not None:
        _correlation_id.reset(token)
    else:
        _correlation_id.set(None)


def set_traceparent(traceparent: Optional[str]) -> contextvars.Token[Optional[str]]:
    """Set the W3C trace context the host sent with the current call."""
    return _traceparent.set(traceparent)


def get_traceparent() -> Optional[str]:
    """The W3C ``traceparent`` of the current call, if the host sent one."""
    return _traceparent.get()
