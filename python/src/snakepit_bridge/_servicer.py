"""The ``BridgeService`` implementation of a worker: tool calls, streaming, sessions, telemetry."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import inspect
import json
import logging
import threading
import time
from typing import Any, AsyncGenerator, AsyncIterator, Awaitable, Callable, Dict, Optional, Tuple, TypeVar, Union

import grpc

from . import telemetry
from .telemetry.stream import dropped_record
from ._adapter import BaseAdapter, ToolSpec
from ._dispatch import Dispatcher, ToolCallError, chunk_parts, chunk_value
from ._proto import snakepit_bridge_pb2 as pb
from ._proto import snakepit_bridge_pb2_grpc as pb_grpc
from ._wire import encode_any

log = logging.getLogger("snakepit_bridge.server")

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

#: The context grpc.aio hands an RPC handler, by request and response message.
Context = grpc.aio.ServicerContext

__all__ = [
    "BridgeServicer",
    "CORRELATION_KEY",
    "TOKEN_KEY",
    "TokenInterceptor",
    "apply_telemetry_control",
    "chunk_parts",
    "chunk_value",
    "telemetry_event_message",
    "tool_spec_message",
]

# How often an idle telemetry stream reports events dropped by a full queue.
DROP_REPORT_INTERVAL_S = 0.25

TOKEN_KEY = "x-snakepit-token"
CORRELATION_KEY = "x-snakepit-correlation-id"

# How a failed streaming call aborts the RPC.
_STREAM_ABORT_CODES = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "internal": grpc.StatusCode.INTERNAL,
}


class _Unlocked:
    """The thread profile's stand-in for the process profile's lock: calls run at once."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class BridgeServicer(pb_grpc.BridgeServiceServicer):
    """Serves one adapter instance over ``snakepit.bridge.BridgeService``.

    Tool calls go to a :class:`Dispatcher` (shared with the ``fast`` transport when the worker
    serves one, so both see the same sessions).
    """

    def __init__(
        self,
        adapter: BaseAdapter,
        token: Optional[str],
        executor: concurrent.futures.Executor,
        host_address: Optional[str],
        worker_id: Optional[str] = None,
        dispatcher: Optional[Dispatcher] = None,
        serial: bool = False,
    ) -> None:
        self.dispatcher = dispatcher or Dispatcher(adapter, token, executor, host_address, worker_id)
        self.adapter = adapter
        self.token = token
        self.closing = asyncio.Event()
        # The process profile runs one call at a time, in order of arrival (asyncio's lock is
        # fair), also when the host pipelines calls (pipeline_depth > 1).
        self._one_at_a_time: Union[asyncio.Lock, _Unlocked] = asyncio.Lock() if serial else _Unlocked()

    @property
    def tools(self) -> Dict[str, ToolSpec]:
        """The adapter's tools by name."""
        return self.dispatcher.tools

    @property
    def sessions(self) -> Dict[str, Dict[str, Any]]:
        """The sessions this worker has seen."""
        return self.dispatcher.sessions

    @property
    def in_flight(self) -> int:
        """Tool calls running now."""
        return self.dispatcher.in_flight

    def close(self) -> None:
        """Mark the server as stopping: open telemetry streams end instead of holding it up."""
        self.closing.set()

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _call_context(context: Context[Any, Any]) -> Tuple[Optional[float], Optional[str]]:
        """The deadline (monotonic) and header correlation id of an RPC."""
        remaining: Optional[float] = context.time_remaining()  # None when the call has no deadline
        deadline = time.monotonic() + remaining if remaining is not None else None
        correlation = dict(context.invocation_metadata() or ()).get(CORRELATION_KEY)
        # Metadata values are text unless the key ends in -bin.
        return deadline, correlation if isinstance(correlation, str) else None

    # -- RPCs ----------------------------------------------------------------------------
    async def Ping(self, request: pb.PingRequest, context: Context[pb.PingRequest, pb.PingResponse]) -> pb.PingResponse:
        resp = pb.PingResponse(message=f"pong: {request.message}" if request.message else "pong")
        resp.server_time.GetCurrentTime()
        return resp

    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: Context[pb.HeartbeatRequest, pb.HeartbeatResponse]
    ) -> pb.HeartbeatResponse:
        resp = pb.HeartbeatResponse(session_valid=(not request.session_id) or request.session_id in self.sessions)
        resp.server_time.GetCurrentTime()
        return resp

    async def InitializeSession(
        self, request: pb.InitializeSessionRequest, context: Context[pb.InitializeSessionRequest, pb.InitializeSessionResponse]
    ) -> pb.InitializeSessionResponse:
        self.dispatcher.session(request.session_id, request.metadata)
        resp = pb.InitializeSessionResponse(success=True)
        for spec in self.tools.values():
            resp.available_tools[spec.name].CopyFrom(tool_spec_message(spec))
        return resp

    async def CleanupSession(
        self, request: pb.CleanupSessionRequest, context: Context[pb.CleanupSessionRequest, pb.CleanupSessionResponse]
    ) -> pb.CleanupSessionResponse:
        removed = self.sessions.pop(request.session_id, None)
        # The adapter's optional per-session hook: release what it kept for this session.
        hook = getattr(self.adapter, "cleanup_session", None)
        if callable(hook):
            try:
                result = hook(request.session_id)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - reported to the host, the worker stays up
                log.warning("adapter cleanup_session(%r) failed: %s", request.session_id, exc)
                return pb.CleanupSessionResponse(success=False, resources_cleaned=1 if removed else 0)
        return pb.CleanupSessionResponse(success=True, resources_cleaned=1 if removed else 0)

    async def GetSession(
        self, request: pb.GetSessionRequest, context: Context[pb.GetSessionRequest, pb.GetSessionResponse]
    ) -> pb.GetSessionResponse:
        session = self.sessions.get(request.session_id)
        if session is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no session '{request.session_id}' on this worker")
            raise AssertionError("context.abort raises")
        resp = pb.GetSessionResponse(session_id=request.session_id, metadata=session["metadata"], tool_count=len(self.tools))
        resp.created_at.FromNanoseconds(int(session["created_at"] * 1e9))
        return resp

    async def ExecuteTool(
        self, request: pb.ExecuteToolRequest, context: Context[pb.ExecuteToolRequest, pb.ExecuteToolResponse]
    ) -> pb.ExecuteToolResponse:
        deadline, correlation = self._call_context(context)
        async with self._one_at_a_time:
            return await self.dispatcher.execute(request, deadline, correlation, cancelled=threading.Event())

    async def ExecuteStreamingTool(
        self, request: pb.ExecuteToolRequest, context: Context[pb.ExecuteToolRequest, pb.ToolChunk]
    ) -> AsyncGenerator[pb.ToolChunk, None]:
        stream = self._stream(request, context)
        try:
            async with self._one_at_a_time:
                async for chunk in stream:
                    yield chunk
        finally:
            await stream.aclose()

    async def _stream(
        self, request: pb.ExecuteToolRequest, context: Context[pb.ExecuteToolRequest, pb.ToolChunk]
    ) -> AsyncGenerator[pb.ToolChunk, None]:
        deadline, correlation = self._call_context(context)
        chunks = self.dispatcher.stream(request, deadline, correlation, cancelled=threading.Event())
        failure: Optional[ToolCallError] = None
        try:
            async for chunk in chunks:
                yield chunk
        except ToolCallError as exc:
            failure = exc
        finally:
            await chunks.aclose()
        if failure is not None:
            await context.abort(_STREAM_ABORT_CODES[failure.kind], json.dumps(failure.payload))

    async def StreamTelemetry(
        self,
        request_iterator: AsyncIterator[pb.TelemetryControl],
        context: Context[pb.TelemetryControl, pb.TelemetryEvent],
    ) -> AsyncGenerator[pb.TelemetryEvent, None]:

        async def follow_controls() -> None:
            async for control in request_iterator:
                apply_telemetry_control(control)

        controls = asyncio.ensure_future(follow_controls())
        closing: asyncio.Future[Any] = asyncio.ensure_future(self.closing.wait())
        next_event: Optional[asyncio.Future[telemetry.TelemetryEventRecord]] = None
        try:
            while True:
                if next_event is None:
                    next_event = asyncio.ensure_future(telemetry.BUFFER.next_event())
                # Wake up now and then even when no event comes, to report drops that
                # happened after the last queued event was sent.
                await asyncio.wait(
                    {next_event, closing}, timeout=DROP_REPORT_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED
                )
                if closing.done() and not next_event.done():
                    return
                if next_event.done():
                    yield telemetry_event_message(next_event.result())
                    next_event = None
                dropped = dropped_record(telemetry.BUFFER.take_dropped(), time.time_ns())
                if dropped is not None:
                    yield telemetry_event_message(dropped)
        finally:
            if next_event is not None:
                next_event.cancel()
            controls.cancel()
            closing.cancel()

    async def RegisterTools(
        self, request: pb.RegisterToolsRequest, context: Context[pb.RegisterToolsRequest, pb.RegisterToolsResponse]
    ) -> pb.RegisterToolsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "RegisterTools is served by the host, not by a worker")

    async def GetExposedElixirTools(
        self, request: pb.GetExposedElixirToolsRequest, context: Context[pb.GetExposedElixirToolsRequest, pb.GetExposedElixirToolsResponse]
    ) -> pb.GetExposedElixirToolsResponse:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "GetExposedElixirTools is served by the host, not by a worker"
        )

    async def ExecuteElixirTool(
        self, request: pb.ExecuteElixirToolRequest, context: Context[pb.ExecuteElixirToolRequest, pb.ExecuteElixirToolResponse]
    ) -> pb.ExecuteElixirToolResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "ExecuteElixirTool is served by the host, not by a worker")


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every RPC whose ``x-snakepit-token`` metadata is not the run token.

    The one place the worker's gRPC server checks the token: each method's handler is
    replaced, before it runs, by one that aborts with ``UNAUTHENTICATED``. Without a token
    (a worker started by hand) every call is served.
    """

    def __init__(self, token: Optional[str]) -> None:
        self._token = token.encode() if token else None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Optional[grpc.RpcMethodHandler[_Req, _Resp]]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Optional[grpc.RpcMethodHandler[_Req, _Resp]]:
        handler = await continuation(handler_call_details)
        if self._token is None or handler is None:
            return handler
        sent = dict(handler_call_details.invocation_metadata or ()).get(TOKEN_KEY, "")
        if hmac.compare_digest(str(sent).encode(), self._token):
            return handler
        return _refusing(handler)


_REFUSAL = f"missing or wrong {TOKEN_KEY} metadata"


def _refusing(handler: grpc.RpcMethodHandler[_Req, _Resp]) -> grpc.RpcMethodHandler[_Req, _Resp]:
    """A handler of the same shape as ``handler`` that aborts with ``UNAUTHENTICATED``.

    One coroutine serves every shape: grpc.aio runs a streaming handler that is a plain
    coroutine as one that writes its responses through the context (here: none, it aborts).
    """

    async def refuse(request: Any, context: Context[_Req, _Resp]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _REFUSAL)

    decode, encode = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, decode, encode)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse, decode, encode)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, decode, encode)
    return grpc.stream_stream_rpc_method_handler(refuse, decode, encode)


def tool_spec_message(spec: ToolSpec) -> pb.ToolSpec:
    """The wire ``ToolSpec`` of a registered tool."""
    msg = pb.ToolSpec(name=spec.name, description=spec.description, supports_streaming=spec.supports_streaming)
    for p in spec.parameters:
        param = msg.parameters.add(name=p.name, type=p.type, required=p.required)
        if not p.required:
            try:
                param.default_value.CopyFrom(encode_any(p.default))
            except (TypeError, ValueError):
                param.default_value.CopyFrom(encode_any(repr(p.default)))
    if spec.required_variables:
        msg.metadata["required_variables"] = ",".join(spec.required_variables)
    if spec.accepts_any_kwargs:
        msg.metadata["accepts_any_kwargs"] = "true"
    return msg


def apply_telemetry_control(control: pb.TelemetryControl) -> None:
    """Apply one of the host's TelemetryControl messages to the event buffer."""
    kind = control.WhichOneof("control")
    if kind == "toggle":
        telemetry.BUFFER.apply_control(enabled=control.toggle.enabled)
    elif kind == "sampling":
        telemetry.BUFFER.apply_control(
            sampling_rate=control.sampling.sampling_rate, patterns=list(control.sampling.event_patterns)
        )
    elif kind == "filter":
        telemetry.BUFFER.apply_control(allow=list(control.filter.allow), deny=list(control.filter.deny))


def telemetry_event_message(event: telemetry.TelemetryEventRecord) -> pb.TelemetryEvent:
    """The wire form of a buffered telemetry event."""
    msg = pb.TelemetryEvent(
        event_parts=event.name.split("."),
        metadata=event.metadata,
        timestamp_ns=event.timestamp_ns,
        correlation_id=event.correlation_id,
    )
    for key, value in event.measurements.items():
        if isinstance(value, bool):
            msg.measurements[key].int_value = int(value)
        elif isinstance(value, int):
            msg.measurements[key].int_value = value
        elif isinstance(value, float):
            msg.measurements[key].float_value = value
        else:
            msg.measurements[key].string_value = str(value)
    return msg
