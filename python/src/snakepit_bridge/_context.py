"""The per-call ``SessionContext`` and calls from Python back into host tools."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional


class HostBridgeUnavailableError(RuntimeError):
    """Raised when Python calls a host tool but no host address was configured."""


class HostToolError(RuntimeError):
    """Raised when a host tool reports a failure."""


class SessionContext:
    """What a tool call knows about its caller: session, request metadata and deadline."""

    def __init__(
        self,
        session_id: str,
        request_metadata: Optional[Dict[str, str]] = None,
        deadline: Optional[float] = None,
        host_address: Optional[str] = None,
        token: Optional[str] = None,
    ) -> None:
        self.session_id = session_id
        self.request_metadata = dict(request_metadata or {})
        self._deadline = deadline
        self._host_address = host_address
        self._token = token

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the caller's deadline, or ``None`` when the call has none."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def call_elixir_tool(self, name: str, params: Optional[Dict[str, Any]] = None, /, options=None, **kwargs) -> Any:
        """Call a tool registered on the host (``ExecuteElixirTool``) and return its result."""
        if not self._host_address:
            raise HostBridgeUnavailableError(
                f"cannot call host tool '{name}': no host address (start the worker with --elixir-address or SNAKEPIT_GRPC_ADDRESS)"
            )
        import grpc

        from ._proto import snakepit_bridge_pb2 as pb
        from ._proto import snakepit_bridge_pb2_grpc as pb_grpc
        from ._wire import decode_any, encode_any

        arguments = dict(params or {})
        arguments.update(kwargs)
        timeout_s = float((options or {}).get("timeout", 5000)) / 1000.0
        target, channel_options = host_target(self._host_address)
        with grpc.insecure_channel(target, options=channel_options) as channel:
            stub = pb_grpc.BridgeServiceStub(channel)
            request = pb.ExecuteElixirToolRequest(
                session_id=self.session_id,
                tool_name=name,
                parameters={k: encode_any(v) for k, v in arguments.items()},
            )
            metadata = [("x-snakepit-token", self._token)] if self._token else []
            response = stub.ExecuteElixirTool(request, timeout=timeout_s, metadata=metadata)
        if not response.success:
            raise HostToolError(f"host tool '{name}' failed: {response.error_message}")
        if response.binary_result:
            return bytes(response.binary_result)
        return decode_any(response.result) if response.HasField("result") else None

    # The seeds' lazily loaded host-tool catalogue is served by GetExposedElixirTools.
    @property
    def elixir_tools(self) -> Dict[str, Any]:
        """Host tools exposed to Python, name -> callable proxy."""
        if not self._host_address:
            raise HostBridgeUnavailableError("no host address configured")
        import grpc

        from ._proto import snakepit_bridge_pb2 as pb
        from ._proto import snakepit_bridge_pb2_grpc as pb_grpc

        target, channel_options = host_target(self._host_address)
        with grpc.insecure_channel(target, options=channel_options) as channel:
            stub = pb_grpc.BridgeServiceStub(channel)
            metadata = [("x-snakepit-token", self._token)] if self._token else []
            resp = stub.GetExposedElixirTools(pb.GetExposedElixirToolsRequest(session_id=self.session_id), metadata=metadata)
        return {t.name: (lambda _n=t.name, **kw: self.call_elixir_tool(_n, kw)) for t in resp.tools}


def host_target(address: str):
    """Turn ``unix:/path`` or ``host:port`` into a grpc target and channel options."""
    if address.startswith("unix:"):
        # grpcio over UDS sends an :authority h2 servers reject unless it is a plain host.
        return address, [("grpc.default_authority", "localhost")]
    if address.startswith("tcp:"):
        address = address[4:]
    return address, []


def env_host_address() -> Optional[str]:
    return os.environ.get("SNAKEPIT_GRPC_ADDRESS") or None


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
