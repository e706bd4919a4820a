"""The default backend: events queue in the bounded buffer that ``StreamTelemetry`` drains."""

from __future__ import annotations

from ..stream import TelemetryBuffer


class GrpcBackend(TelemetryBuffer):
    """The bounded queue streamed to the host over the worker's ``StreamTelemetry`` RPC."""
