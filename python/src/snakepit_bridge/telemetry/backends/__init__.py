"""Where ``telemetry.emit`` sends events: the gRPC stream to the host (default) or stderr.

Pick one with ``SNAKEPIT_TELEMETRY_BACKEND`` (``grpc`` or ``stderr``) or ``set_backend``;
a backend is any object with ``push_raw(name, measurements, metadata, timestamp_ns, correlation_id)``.
"""

from __future__ import annotations

from .grpc import GrpcBackend
from .stderr import StderrBackend

__all__ = ["GrpcBackend", "StderrBackend"]
