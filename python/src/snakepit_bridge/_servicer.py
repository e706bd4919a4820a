"""The ``BridgeService`` implementation of a worker: tool calls, streaming, sessions, telemetry."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import hmac
import inspect
import json
import logging
import threading
import time
from typing import Any, Dict, Optional

import grpc
from google.protobuf import any_pb2

from . import telemetry
from ._adapter import BaseAdapter, StreamChunk, ToolSpec
from ._context import SessionContext
from ._proto import snakepit_bridge_pb2 as pb
from ._proto import snakepit_bridge_pb2_grpc as pb_grpc
from ._typecheck import argument_problems
from ._wire import TYPE_URL_PREFIX, decode_parameters, encode_any, encode_json, error_object, simple_error

log = logging.getLogger("snakepit_bridge.server")

TOKEN_KEY = "x-snakepit-token"
CORRELATION_KEY = "x-snakepit-correlation-id"

# Tags of what a generator's producer thread hands to the streaming RPC.
_ITEM, _ERROR, _DONE = "item", "error", "done"


class BridgeServicer(pb_grpc.BridgeServiceServicer):
    """Serves one adapter instance over ``snakepit.bridge.BridgeService``."""

    def __init__(
        self,
        adapter: BaseAdapter,
        token: Optional[str],
        executor: concurrent.futures.Executor,
        host_address: Optional[str],
        worker_id: Optional[str] = None,
    ) -> None:
        self.adapter = adapter
        self.tools: Dict[str, ToolSpec] = adapter.get_tools()
        self.token = token
        self.executor = executor
        self.host_address = host_address
        self.worker_id = worker_id or ""
        self.sessions: Dict[str, Dict[str, Any]] = {}
        self.in_flight = 0
        self.closing = asyncio.Event()

    def close(self) -> None:
        """Mark the server as stopping: open telemetry streams end instead of holding it up."""
        self.closing.set()

    # -- helpers -------------------------------------------------------------------------
    async def _authorize(self, context) -> None:
        if not self.token:
            return
        sent = dict(context.invocation_metadata() or ()).get(TOKEN_KEY, "")
        if not hmac.compare_digest(str(sent).encode(), self.token.encode()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"missing or wrong {TOKEN_KEY} metadata")

    def _session(self, session_id: str, metadata=None) -> Dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            session = {"created_at": time.time(), "metadata": dict(metadata or {})}
            self.sessions[session_id] = session
        return session

    def _prepare(self, request):
        """Find the tool and check its arguments: returns (tool, kwargs, error object or None)."""
        name = request.tool_name
        kwargs, too_deep = decode_parameters(request.parameters)
        if too_deep is not None:
            return None, kwargs, simple_error("InvalidArgumentsError", too_deep, name, request.session_id, kwargs.keys())
        kwargs.update({k: bytes(v) for k, v in request.binary_parameters.items()})
        tool = self.tools.get(name)
        if tool is None:
            available = ", ".join(sorted(self.tools)) or "(none)"
            message = f"unknown tool '{name}' for adapter {type(self.adapter).__name__}; available tools: {available}"
            return None, kwargs, simple_error("UnknownToolError", message, name, request.session_id, kwargs.keys())
        problems = []
        known = {p.name for p in tool.parameters}
        unexpected = sorted(k for k in kwargs if k not in known)
        if unexpected and not tool.accepts_any_kwargs:
            problems.append("unexpected argument(s) " + ", ".join(repr(k) for k in unexpected))
        missing = [p.name for p in tool.parameters if p.required and p.name not in kwargs]
        if missing:
            problems.append("missing required argument(s) " + ", ".join(repr(k) for k in missing))
        if not problems:
            try:
                inspect.signature(tool.func).bind(**kwargs)
            except TypeError as exc:
                problems.append(str(exc))
        if not problems:
            problems.extend(argument_problems(tool.func, kwargs))
        if problems:
            accepted = ", ".join(
                f"{p.name}: {p.type}{'' if p.required else ' = ' + repr(p.default)}" for p in tool.parameters
            )
            if tool.accepts_any_kwargs:
                accepted = (accepted + ", " if accepted else "") + "**kwargs"
            message = (
                f"invalid arguments for tool '{name}': {'; '.join(problems)} "
                f"(accepted parameters: {accepted or 'none'})"
            )
            return tool, kwargs, simple_error("InvalidArgumentsError", message, name, request.session_id, kwargs.keys())
        return tool, kwargs, None

    def _begin_call(self, request, context) -> None:
        """Give the adapter its SessionContext and the call its correlation id."""
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        if request.session_id:
            self._session(request.session_id)
        correlation = request.metadata.get("correlation_id") or dict(context.invocation_metadata() or ()).get(
            CORRELATION_KEY
        )
        telemetry.set_correlation_id(correlation or None)
        self.adapter.set_session_context(
            SessionContext(
                session_id=request.session_id,
                request_metadata=dict(request.metadata),
                deadline=deadline,
                host_address=self.host_address,
                token=self.token,
            )
        )

    def _in_executor(self, func, *args, **kwargs):
        """Run a blocking callable on the tool executor, keeping the call's context variables."""
        ctx = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(ctx.run, func, *args, **kwargs)
        )

    async def _call(self, tool: ToolSpec, kwargs: Dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(tool.func):
            return await tool.func(**kwargs)
        result = await self._in_executor(tool.func, **kwargs)
        if inspect.isawaitable(result):  # a sync wrapper around a coroutine
            result = await result
        return result

    async def _iterate(self, tool: ToolSpec, kwargs: Dict[str, Any]):
        """Yield a tool's output items as they are produced (no batching)."""
        if inspect.isasyncgenfunction(tool.func):
            source = tool.func(**kwargs)
        elif inspect.isgeneratorfunction(tool.func):
            source = self._iterate_in_thread(tool, kwargs)
        else:
            yield StreamChunk(await self._call(tool, kwargs), is_final=True)
            return
        try:
            async for item in source:
                yield item
        finally:
            await source.aclose()

    async def _iterate_in_thread(self, tool: ToolSpec, kwargs: Dict[str, Any]):
        """Run a sync generator on the tool executor, handing items over a one-slot queue.

        The slot gives backpressure: the generator is resumed only after its previous item
        was taken. When the consumer goes away (cancel, deadline, failure) the generator is
        closed in its own thread.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        stop = threading.Event()

        def hand_over(entry) -> bool:
            try:
                fut = asyncio.run_coroutine_threadsafe(queue.put(entry), loop)
            except RuntimeError:  # the loop is gone
                return False
            while True:
                try:
                    fut.result(timeout=0.25)
                    return not stop.is_set()
                except concurrent.futures.TimeoutError:
                    if stop.is_set():
                        fut.cancel()
                        return False

        def produce() -> None:
            gen = tool.func(**kwargs)
            try:
                for item in gen:
                    if not hand_over((_ITEM, item)):
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                hand_over((_ERROR, exc))
                return
            finally:
                gen.close()
            hand_over((_DONE, None))

        producer = self._in_executor(produce)
        finished = False
        try:
            while True:
                kind, value = await queue.get()
                if kind == _DONE:
                    finished = True
                    break
                if kind == _ERROR:
                    finished = True
                    raise value
                yield value
        finally:
            stop.set()
            while not queue.empty():
                queue.get_nowait()
            if finished:
                await producer

    async def _collect(self, tool: ToolSpec, kwargs: Dict[str, Any]) -> list:
        """A generator tool called through the unary RPC: all its items as one list."""
        items = self._iterate(tool, kwargs)
        try:
            return [chunk_value(i) async for i in items]
        finally:
            await items.aclose()

    def _record(self, phase: str, tool: str, started_ns: int, error: Optional[BaseException] = None) -> None:
        meta = {"command": tool, "tool": tool, "worker_id": self.worker_id}
        if phase == "start":
            telemetry.emit("python.call.start", {"system_time": time.time_ns()}, meta)
            return
        measurements = {"duration": time.monotonic_ns() - started_ns}
        if error is not None:
            meta["error_type"] = type(error).__name__
        telemetry.emit(f"python.call.{phase}", measurements, meta)

    # -- RPCs ----------------------------------------------------------------------------
    async def Ping(self, request, context):
        await self._authorize(context)
        resp = pb.PingResponse(message=f"pong: {request.message}" if request.message else "pong")
        resp.server_time.GetCurrentTime()
        return resp

    async def Heartbeat(self, request, context):
        await self._authorize(context)
        resp = pb.HeartbeatResponse(session_valid=(not request.session_id) or request.session_id in self.sessions)
        resp.server_time.GetCurrentTime()
        return resp

    async def InitializeSession(self, request, context):
        await self._authorize(context)
        self._session(request.session_id, request.metadata)
        resp = pb.InitializeSessionResponse(success=True)
        for spec in self.tools.values():
            resp.available_tools[spec.name].CopyFrom(tool_spec_message(spec))
        return resp

    async def CleanupSession(self, request, context):
        await self._authorize(context)
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

    async def GetSession(self, request, context):
        await self._authorize(context)
        session = self.sessions.get(request.session_id)
        if session is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no session '{request.session_id}' on this worker")
        resp = pb.GetSessionResponse(session_id=request.session_id, metadata=session["metadata"], tool_count=len(self.tools))
        resp.created_at.FromNanoseconds(int(session["created_at"] * 1e9))
        return resp

    async def ExecuteTool(self, request, context):
        await self._authorize(context)
        started = time.monotonic_ns()
        tool, kwargs, error = self._prepare(request)
        if error is not None:
            return pb.ExecuteToolResponse(success=False, error_message=json.dumps(error))
        self.in_flight += 1
        try:
            self._begin_call(request, context)
            self._record("start", request.tool_name, started)
            if tool.is_generator:
                result: Any = await self._collect(tool, kwargs)
            else:
                result = await self._call(tool, kwargs)
        except Exception as exc:  # noqa: BLE001 - every tool failure becomes a structured error
            log.info("tool %s raised %s: %s", request.tool_name, type(exc).__name__, exc)
            self._record("exception", request.tool_name, started, exc)
            payload = error_object(exc, request.tool_name, request.session_id, kwargs.keys())
            return pb.ExecuteToolResponse(success=False, error_message=json.dumps(payload))
        finally:
            self.in_flight -= 1
        self._record("stop", request.tool_name, started)
        elapsed_ms = (time.monotonic_ns() - started) // 1_000_000
        if isinstance(result, (bytes, bytearray, memoryview)):
            null = any_pb2.Any(type_url=TYPE_URL_PREFIX + "binary", value=b"null")
            return pb.ExecuteToolResponse(
                success=True, result=null, binary_result=bytes(result), execution_time_ms=elapsed_ms
            )
        try:
            encoded = encode_any(result)
        except (TypeError, ValueError, RecursionError) as exc:  # circular or too deep structures
            payload = error_object(exc, request.tool_name, request.session_id, kwargs.keys())
            return pb.ExecuteToolResponse(success=False, error_message=json.dumps(payload))
        return pb.ExecuteToolResponse(success=True, result=encoded, execution_time_ms=elapsed_ms)

    async def ExecuteStreamingTool(self, request, context):
        await self._authorize(context)
        started = time.monotonic_ns()
        tool, kwargs, error = self._prepare(request)
        if error is not None:
            code = grpc.StatusCode.NOT_FOUND if error["type"] == "UnknownToolError" else grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, json.dumps(error))
        self.in_flight += 1
        n = 0
        final_sent = False
        failure: Optional[Dict[str, Any]] = None
        try:
            self._begin_call(request, context)
            self._record("start", request.tool_name, started)
            items = self._iterate(tool, kwargs)
            try:
                async for item in items:
                    n += 1
                    data, is_final, metadata = chunk_parts(item)
                    yield pb.ToolChunk(chunk_id=f"{request.tool_name}-{n}", data=data, is_final=is_final, metadata=metadata)
                    if is_final:
                        final_sent = True
                        break
            finally:
                await items.aclose()
        except Exception as exc:  # noqa: BLE001 - mid-stream failures abort with the error object
            self._record("exception", request.tool_name, started, exc)
            failure = error_object(exc, request.tool_name, request.session_id, kwargs.keys())
        finally:
            self.in_flight -= 1
        if failure is not None:
            await context.abort(grpc.StatusCode.INTERNAL, json.dumps(failure))
        self._record("stop", request.tool_name, started)
        if not final_sent:
            yield pb.ToolChunk(chunk_id=f"{request.tool_name}-{n + 1}", data=b"", is_final=True)

    async def StreamTelemetry(self, request_iterator, context):
        await self._authorize(context)

        async def follow_controls() -> None:
            async for control in request_iterator:
                apply_telemetry_control(control)

        controls = asyncio.ensure_future(follow_controls())
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            while True:
                next_event = asyncio.ensure_future(telemetry.BUFFER.next_event())
                await asyncio.wait({next_event, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not next_event.done():
                    next_event.cancel()
                    return
                yield telemetry_event_message(next_event.result())
        finally:
            controls.cancel()
            closing.cancel()

    async def RegisterTools(self, request, context):
        await self._authorize(context)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "RegisterTools is served by the host, not by a worker")

    async def GetExposedElixirTools(self, request, context):
        await self._authorize(context)
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "GetExposedElixirTools is served by the host, not by a worker"
        )

    async def ExecuteElixirTool(self, request, context):
        await self._authorize(context)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "ExecuteElixirTool is served by the host, not by a worker")


def _is_envelope(item: Any) -> bool:
    return isinstance(item, dict) and "data" in item and set(item) <= {"data", "is_final", "metadata"}


def chunk_value(item: Any) -> Any:
    """The value carried by a yielded item (a ``StreamChunk``/envelope's data, or the item)."""
    if isinstance(item, StreamChunk):
        return item.data
    if _is_envelope(item):
        return item["data"]
    return item


def chunk_parts(item: Any):
    """Split a yielded item into (data bytes, is_final, metadata) per the protocol."""
    is_final = False
    metadata: Dict[str, str] = {}
    if isinstance(item, StreamChunk):
        is_final, metadata, item = item.is_final, {str(k): str(v) for k, v in (item.metadata or {}).items()}, item.data
    elif _is_envelope(item):
        is_final = bool(item.get("is_final", False))
        metadata = {str(k): str(v) for k, v in (item.get("metadata") or {}).items()}
        item = item["data"]
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item), is_final, metadata
    if isinstance(item, str):
        return item.encode(), is_final, metadata
    return encode_json(item), is_final, metadata


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
