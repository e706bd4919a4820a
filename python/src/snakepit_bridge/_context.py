"""The per-call ``SessionContext`` and calls from Python back into host tools."""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Any, Dict, List, Optional, Protocol, Tuple, Type


class HostBridgeUnavailableError(RuntimeError):
    """Raised when Python calls a host tool but no host address was configured."""


class HostToolError(RuntimeError):
    """Raised when a host tool reports a failure."""


class Cancellation(Protocol):
    """What a transport sets when a call's caller goes away: a :class:`CancelFlag` or a ``threading.Event``."""

    def set(self) -> None:
        """Mark the call as cancelled."""
        ...

    def is_set(self) -> bool:
        """Whether the call was cancelled."""
        ...


class CancelFlag:
    """Whether a call's caller went away: set once by the transport, read by the tool.

    The cheap stand-in for a ``threading.Event`` a call needs (assigning and reading one
    attribute is atomic in CPython), created for every call; ``threading.Event`` works too.
    """

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Mark the call as cancelled."""
        self._set = True

    def is_set(self) -> bool:
        """Whether the call was cancelled."""
        return self._set


class SessionContext:
    """What a tool call knows about its caller: session, request metadata and deadline.

    Also constructible the original's way, ``SessionContext(stub, session_id)``, with a
    ``BridgeServiceStub`` of the host: host calls then go through that stub.
    """

    def __init__(
        self,
        session_id: Any,
        request_metadata: Any = None,
        deadline: Optional[float] = None,
        host_address: Optional[str] = None,
        token: Optional[str] = None,
        cancelled: Optional[Cancellation] = None,
        *,
        stub: Any = None,
    ) -> None:
        if not isinstance(session_id, str) and isinstance(request_metadata, str):
            # The original's signature: SessionContext(stub, session_id).
            stub, session_id, request_metadata = session_id, request_metadata, None
        self.session_id = session_id
        self.stub = stub
        self.request_metadata = dict(request_metadata or {})
        self._deadline = deadline
        self._host_address = host_address
        self._token = token
        self._cancelled: Cancellation = cancelled if cancelled is not None else CancelFlag()

    @property
    def cancelled(self) -> bool:
        """Whether the caller went away (dropped the call or the stream, or its deadline passed).

        A long sync tool polls it to stop early; the call's result is no longer wanted.
        """
        return self._cancelled.is_set()

    def __repr__(self) -> str:
        return f"SessionContext(session_id={self.session_id!r})"

    def __enter__(self) -> "SessionContext":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.cleanup()

    def cleanup(self) -> bool:
        """Ask the host to drop this session (best effort); returns whether the host answered."""
        from ._proto import snakepit_bridge_pb2 as pb

        try:
            stub = self._host_stub("cannot clean up the session")
            stub.CleanupSession(
                pb.CleanupSessionRequest(session_id=self.session_id), timeout=5.0, metadata=self._call_metadata()
            )
            return True
        except Exception:  # noqa: BLE001 - best effort, like the original
            return False

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the caller's deadline, or ``None`` when the call has none."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def call_elixir_tool(
        self,
        name: str,
        params: Optional[Dict[str, Any]] = None,
        /,
        options: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> Any:
        """Call a tool registered on the host (``ExecuteElixirTool``) and return its result.

        Arguments come from ``params`` and/or keyword arguments; ``options={"timeout": ms}``
        bounds the call (default 5000 ms). Raises ``HostBridgeUnavailableError`` when the worker
        has no host address, ``HostToolError`` when the host tool fails, ``grpc.RpcError`` when
        the call itself fails.
        """
        from . import telemetry
        from ._proto import snakepit_bridge_pb2 as pb
        from ._wire import decode_any, encode_any

        arguments = dict(params or {})
        arguments.update(kwargs)
        timeout_s = float((options or {}).get("timeout", 5000)) / 1000.0
        stub = self._host_stub(f"cannot call host tool '{name}'")
        request = pb.ExecuteElixirToolRequest(
            session_id=self.session_id,
            tool_name=name,
            parameters={k: encode_any(v) for k, v in arguments.items()},
        )
        correlation = telemetry.get_correlation_id()
        if correlation:
            request.metadata["correlation_id"] = correlation
        response = stub.ExecuteElixirTool(request, timeout=timeout_s, metadata=self._call_metadata())
        if not response.success:
            raise HostToolError(f"host tool '{name}' failed: {response.error_message}")
        if response.binary_result:
            return bytes(response.binary_result)
        return decode_any(response.result) if response.HasField("result") else None

    async def call_elixir_tool_async(
        self, name: str, params: Optional[Dict[str, Any]] = None, /, options: Optional[Dict[str, Any]] = None, **kwargs: Any
    ) -> Any:
        """``call_elixir_tool`` for async tools: runs the blocking call off the event loop."""
        import asyncio
        import contextvars
        import functools

        call = functools.partial(self.call_elixir_tool, name, params, options=options, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, contextvars.copy_context().run, call)

    @property
    def elixir_tools(self) -> Dict[str, Any]:
        """Host tools exposed to Python (``GetExposedElixirTools``): name -> callable proxy."""
        from ._proto import snakepit_bridge_pb2 as pb

        stub = self._host_stub("cannot list host tools")
        resp = stub.GetExposedElixirTools(
            pb.GetExposedElixirToolsRequest(session_id=self.session_id), timeout=5.0, metadata=self._call_metadata()
        )
        return {t.name: (lambda _n=t.name, **kw: self.call_elixir_tool(_n, kw)) for t in resp.tools}

    def _call_metadata(self) -> List[Tuple[str, str]]:
        return [("x-snakepit-token", self._token)] if self._token else []

    def _host_stub(self, what: str) -> Any:
        if self.stub is not None:
            return self.stub
        if not self._host_address:
            raise HostBridgeUnavailableError(
                f"{what}: this worker has no host address "
                "(start it with --elixir-address/--host-address or set SNAKEPIT_GRPC_ADDRESS)"
            )
        return _host_stub(self._host_address)


_stubs: Dict[str, Any] = {}
_stubs_lock = threading.Lock()


def _host_stub(address: str) -> Any:
    """One channel per host address for the whole process (grpc channels are thread-safe)."""
    with _stubs_lock:
        stub = _stubs.get(address)
        if stub is None:
            import grpc

            from ._proto import snakepit_bridge_pb2_grpc as pb_grpc

            target, options = host_target(address)
            stub = pb_grpc.BridgeServiceStub(grpc.insecure_channel(target, options=options))
            _stubs[address] = stub
        return stub


def host_target(address: str) -> Tuple[str, List[Tuple[str, str]]]:
    """Turn ``unix:/path`` or ``host:port`` into a grpc target and channel options."""
    if address.startswith("unix:"):
        # grpcio over UDS sends an :authority h2 servers reject unless it is a plain host.
        return address, [("grpc.default_authority", "localhost")]
    if address.startswith("tcp:"):
        address = address[4:]
    return address, []


def env_host_address() -> Optional[str]:
    """The host address from ``SNAKEPIT_GRPC_ADDRESS`` (the default of ``--elixir-address``)."""
    return os.environ.get("SNAKEPIT_GRPC_ADDRESS") or None
