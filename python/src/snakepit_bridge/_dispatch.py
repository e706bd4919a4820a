"""Transport-neutral tool calls: arguments, session context, sync/async tools, generators, results.

Both the gRPC servicer (``_servicer.py``) and the framed ``fast`` transport (``_fast.py``) hand an
``ExecuteToolRequest`` to one :class:`Dispatcher`, which returns the ``ExecuteToolResponse`` of a
unary call or yields the ``ToolChunk`` messages of a streaming call. What differs between the
transports (how the token, the deadline and the correlation id arrive, how a failure is sent)
stays in the transport.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import json
import logging
import threading
import time
from typing import Any, AsyncGenerator, AsyncIterator, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar

from google.protobuf import any_pb2

from . import _shm, telemetry, thread_safety_checker
from ._adapter import BaseAdapter, StreamChunk, ToolSpec
from ._compat import PLAIN_RESULTS, adapter_tools, checked, context_setter, execute_tool_spec, has_execute_tool, is_result_iterator
from ._context import Cancellation, SessionContext
from ._proto import snakepit_bridge_pb2 as pb
from ._typecheck import ArgumentChecks
from ._wire import TYPE_URL_PREFIX, decode_parameters, encode_any, encode_json, error_object, simple_error

log = logging.getLogger("snakepit_bridge.server")

T = TypeVar("T")

# Tags of what a generator's producer thread hands to the streaming consumer.
_ITEM, _ERROR, _DONE = "item", "error", "done"


class ToolCallError(Exception):
    """A streaming call failed: ``kind`` says how, ``payload`` is the structured error object.

    ``kind`` is ``"not_found"`` (unknown tool), ``"invalid_argument"`` (bad arguments) or
    ``"internal"`` (the tool raised mid-stream); each transport maps it to its own status.
    """

    def __init__(self, kind: str, payload: Dict[str, Any]) -> None:
        super().__init__(payload.get("message", ""))
        self.kind = kind
        self.payload = payload


class Dispatcher:
    """Runs the tools of one adapter instance; shared by every transport of a worker.

    ``inline=True`` on a call runs a sync tool (or drives a sync generator) on the calling
    thread instead of handing it to the executor: the process profile's fast transport does
    that, since it serves one call at a time on its own thread.
    """

    def __init__(
        self,
        adapter: BaseAdapter,
        token: Optional[str],
        executor: concurrent.futures.Executor,
        host_address: Optional[str],
        worker_id: Optional[str] = None,
    ) -> None:
        self.adapter = adapter
        self.tools: Dict[str, ToolSpec] = adapter_tools(adapter)
        self.token = token
        self.executor = executor
        self.host_address = host_address
        self.worker_id = worker_id or ""
        self.sessions: Dict[str, Dict[str, Any]] = {}
        self.in_flight = 0
        # Call plans, computed once per tool: what the hot path would otherwise ask inspect for.
        self._plans: Dict[Any, _CallPlan] = {}
        # The original's rule, decided once: an adapter with execute_tool dispatches every
        # call itself (its specs by tool name, so each gets one call plan).
        self._execute_tool = has_execute_tool(adapter)
        self._execute_specs: Dict[str, ToolSpec] = {}
        self._set_context = context_setter(adapter)
        for spec in self.tools.values():
            self.plan(spec)

    def plan(self, tool: ToolSpec) -> "_CallPlan":
        """The cached :class:`_CallPlan` of ``tool`` (built on first use for tools added later)."""
        plan = self._plans.get(tool.func)
        if plan is None:
            plan = _CallPlan(tool)
            self._plans[tool.func] = plan
        return plan

    def execute_spec(self, name: str) -> ToolSpec:
        """The spec that sends calls of ``name`` to the adapter's ``execute_tool`` (made once per name)."""
        spec = self._execute_specs.get(name)
        if spec is None:
            spec = execute_tool_spec(self.adapter, name, self.tools.get(name))
            self._execute_specs[name] = spec
        return spec

    # -- sessions and call set-up ------------------------------------------------------------
    def session(self, session_id: str, metadata: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """The session record of ``session_id``, created on first use."""
        session = self.sessions.get(session_id)
        if session is None:
            session = {"created_at": time.time(), "metadata": dict(metadata or {})}
            self.sessions[session_id] = session
        return session

    def prepare(self, request: pb.ExecuteToolRequest) -> Tuple[ToolSpec, Dict[str, Any]]:
        """Find the tool and check its arguments: returns (tool, kwargs).

        Raises :class:`ToolCallError` (``not_found`` or ``invalid_argument``) whose payload is
        the error object, naming what was wrong.
        """
        name = request.tool_name
        kwargs, too_deep = decode_parameters(request.parameters)
        if too_deep is not None:
            raise _rejected(simple_error("InvalidArgumentsError", too_deep, name, request.session_id, kwargs.keys()))
        kwargs.update({k: bytes(v) for k, v in request.binary_parameters.items()})
        try:
            kwargs = _shm.resolve_arguments(kwargs)
        except (_shm.ZeroCopyError, OSError, ValueError, TypeError) as exc:
            message = f"cannot read the array arguments of tool '{name}': {exc}"
            raise _rejected(simple_error("ZeroCopyError", message, name, request.session_id, kwargs.keys()))
        if self._execute_tool:
            return self.execute_spec(name), kwargs
        tool = self.tools.get(name)
        if tool is None:
            available = ", ".join(sorted(self.tools)) or "(none)"
            message = f"unknown tool '{name}' for adapter {type(self.adapter).__name__}; available tools: {available}"
            raise _rejected(simple_error("UnknownToolError", message, name, request.session_id, kwargs.keys()))
        problems: List[str] = []
        plan = self.plan(tool)
        if not tool.accepts_any_kwargs and not plan.known.issuperset(kwargs):
            unexpected = sorted(k for k in kwargs if k not in plan.known)
            problems.append("unexpected argument(s) " + ", ".join(repr(k) for k in unexpected))
        if plan.required:
            missing = [name for name in plan.required if name not in kwargs]
            if missing:
                problems.append("missing required argument(s) " + ", ".join(repr(k) for k in missing))
        if not problems and plan.needs_bind:
            try:
                plan.signature.bind(**kwargs)
            except TypeError as exc:
                problems.append(str(exc))
        if not problems:
            problems.extend(plan.checks.problems(kwargs))
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
            raise _rejected(simple_error("InvalidArgumentsError", message, name, request.session_id, kwargs.keys()))
        return tool, kwargs

    def begin_call(
        self,
        request: pb.ExecuteToolRequest,
        deadline: Optional[float],
        correlation: Optional[str] = None,
        cancelled: Optional[Cancellation] = None,
    ) -> None:
        """Give the adapter its SessionContext and the call its correlation id.

        ``deadline`` is a ``time.monotonic()`` instant or None; ``correlation`` is the id the
        transport carried outside the request (the request's ``correlation_id`` wins);
        ``cancelled`` is the event the transport sets when the caller goes away.
        """
        if request.session_id:
            self.session(request.session_id)
        telemetry.set_correlation_id(request.metadata.get("correlation_id") or correlation or None)
        telemetry.set_traceparent(request.metadata.get("traceparent") or None)
        self._set_context(
            SessionContext(
                session_id=request.session_id,
                request_metadata=dict(request.metadata),
                deadline=deadline,
                host_address=self.host_address,
                token=self.token,
                cancelled=cancelled,
            ),
        )

    # -- running tools -----------------------------------------------------------------------
    def _in_executor(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Run a blocking callable on the tool executor, keeping the call's context variables."""
        ctx = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(ctx.run, func, *args, **kwargs)
        )

    async def call(self, tool: ToolSpec, kwargs: Dict[str, Any], inline: bool = False) -> Any:
        """Call a (non-generator) tool and return its result."""
        if self.plan(tool).is_coroutine:
            return await tool.func(**kwargs)
        func = checked(tool) if thread_safety_checker._global_checker.enabled else tool.func
        result = func(**kwargs) if inline else await self._in_executor(func, **kwargs)
        if inspect.isawaitable(result):  # a sync wrapper around a coroutine
            result = await result
        return result

    async def iterate(self, tool: ToolSpec, kwargs: Dict[str, Any], inline: bool = False) -> AsyncGenerator[Any, None]:
        """Yield a tool's output items as they are produced (no batching)."""
        plan = self.plan(tool)
        source: AsyncGenerator[Any, None]
        if plan.is_asyncgen:
            source = tool.func(**kwargs)
        elif plan.is_generator:
            # Creating a generator runs none of its code: it is driven where the items are taken.
            gen = tool.func(**kwargs)
            source = _iterate_inline(gen) if inline else self._iterate_in_thread(gen)
        else:
            result = await self.call(tool, kwargs, inline)
            if not is_result_iterator(result):
                yield StreamChunk(result, is_final=True)
                return
            # A tool that returned a generator or iterator streams its items.
            source = self._source_of(result, inline)
        try:
            async for item in source:
                yield item
        finally:
            await source.aclose()

    def _source_of(self, iterator: Any, inline: bool) -> AsyncGenerator[Any, None]:
        """An async generator over a returned (sync or async) iterator."""
        if hasattr(iterator, "__anext__"):
            return _aiter(iterator)
        return _iterate_inline(iterator) if inline else self._iterate_in_thread(iterator)

    async def _iterate_in_thread(self, gen: Iterable[Any]) -> AsyncGenerator[Any, None]:
        """Run a sync generator on the tool executor, handing items over a one-slot queue.

        The slot gives backpressure: the generator is resumed only after its previous item
        was taken. When the consumer goes away (cancel, deadline, failure) the generator is
        closed in its own thread.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Tuple[str, Any]] = asyncio.Queue(maxsize=1)
        stop = threading.Event()

        def hand_over(entry: Tuple[str, Any]) -> bool:
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
            try:
                for item in gen:
                    if not hand_over((_ITEM, item)):
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                hand_over((_ERROR, exc))
                return
            finally:
                close = getattr(gen, "close", None)
                if callable(close):
                    close()
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

    async def collect(self, tool: ToolSpec, kwargs: Dict[str, Any], inline: bool = False) -> List[Any]:
        """A generator tool called through a unary call: all its items as one list."""
        items = self.iterate(tool, kwargs, inline)
        try:
            return [chunk_value(i) async for i in items]
        finally:
            await items.aclose()

    def record(self, phase: str, tool: str, started_ns: int, error: Optional[BaseException] = None) -> None:
        """Emit the ``python.call.<phase>`` telemetry event of a call.

        Callers skip it while ``telemetry.recording()`` is False (checked once per call), so a
        call nobody observes builds no event.
        """
        meta = {"command": tool, "tool": tool, "worker_id": self.worker_id}
        traceparent = telemetry.get_traceparent()
        if traceparent:
            meta["traceparent"] = traceparent
        if phase == "start":
            telemetry.emit("python.call.start", {"system_time": time.time_ns()}, meta)
            return
        measurements = {"duration": time.monotonic_ns() - started_ns}
        if error is not None:
            meta["error_type"] = type(error).__name__
        telemetry.emit(f"python.call.{phase}", measurements, meta)

    # -- whole calls ---------------------------------------------------------------------------
    async def execute(
        self,
        request: pb.ExecuteToolRequest,
        deadline: Optional[float] = None,
        correlation: Optional[str] = None,
        inline: bool = False,
        cancelled: Optional[Cancellation] = None,
    ) -> pb.ExecuteToolResponse:
        """Run one unary call; every failure is a ``success=false`` response with the error object."""
        started = time.monotonic_ns()
        # One check per call: an unobserved call builds no telemetry event at all.
        observed = telemetry.recording()
        try:
            tool, kwargs = self.prepare(request)
        except ToolCallError as rejected:
            return pb.ExecuteToolResponse(success=False, error_message=json.dumps(rejected.payload))
        self.in_flight += 1
        try:
            self.begin_call(request, deadline, correlation, cancelled)
            if observed:
                self.record("start", request.tool_name, started)
            plan = self.plan(tool)
            if plan.is_generator or plan.is_asyncgen:
                result: Any = await self.collect(tool, kwargs, inline)
            else:
                result = await self.call(tool, kwargs, inline)
                if not isinstance(result, PLAIN_RESULTS) and is_result_iterator(result):
                    items = self._source_of(result, inline)
                    try:
                        result = [chunk_value(i) async for i in items]
                    finally:
                        await items.aclose()
        except asyncio.CancelledError:
            if cancelled is not None:
                cancelled.set()
            raise
        except Exception as exc:  # noqa: BLE001 - every tool failure becomes a structured error
            log.info("tool %s raised %s: %s", request.tool_name, type(exc).__name__, exc)
            if observed:
                self.record("exception", request.tool_name, started, exc)
            payload = error_object(exc, request.tool_name, request.session_id, kwargs.keys())
            return pb.ExecuteToolResponse(success=False, error_message=json.dumps(payload))
        finally:
            self.in_flight -= 1
        if observed:
            self.record("stop", request.tool_name, started)
        elapsed_ms = (time.monotonic_ns() - started) // 1_000_000
        try:
            result, array_bytes = _shm.encode_result(result)
        except (_shm.ZeroCopyError, OSError, ValueError) as exc:
            payload = error_object(exc, request.tool_name, request.session_id, kwargs.keys())
            return pb.ExecuteToolResponse(success=False, error_message=json.dumps(payload))
        if array_bytes is not None:
            return pb.ExecuteToolResponse(
                success=True, result=encode_any(result), binary_result=array_bytes, execution_time_ms=elapsed_ms
            )
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

    async def stream(
        self,
        request: pb.ExecuteToolRequest,
        deadline: Optional[float] = None,
        correlation: Optional[str] = None,
        inline: bool = False,
        cancelled: Optional[Cancellation] = None,
    ) -> AsyncGenerator[pb.ToolChunk, None]:
        """Run one streaming call, yielding its chunks; raises :class:`ToolCallError` on failure.

        Chunk ids are ``<tool>-<n>`` from 1; when no item was marked final, one extra empty
        chunk with ``is_final`` ends the stream. Closing the iterator early (the caller went
        away) closes the tool's generator and sets ``cancelled``.
        """
        started = time.monotonic_ns()
        # One check per call: an unobserved call builds no telemetry event at all.
        observed = telemetry.recording()
        tool, kwargs = self.prepare(request)  # raises ToolCallError: not_found or invalid_argument
        self.in_flight += 1
        n = 0
        final_sent = False
        failure: Optional[Dict[str, Any]] = None
        try:
            self.begin_call(request, deadline, correlation, cancelled)
            if observed:
                self.record("start", request.tool_name, started)
            items = self.iterate(tool, kwargs, inline)
            try:
                async for item in items:
                    n += 1
                    data, is_final, metadata = chunk_parts(item)
                    yield pb.ToolChunk(chunk_id=f"{request.tool_name}-{n}", data=data, is_final=is_final, metadata=metadata)
                    if is_final:
                        final_sent = True
                        break
            except (GeneratorExit, asyncio.CancelledError):  # the caller went away
                if cancelled is not None:
                    cancelled.set()
                raise
            finally:
                await items.aclose()
        except Exception as exc:  # noqa: BLE001 - mid-stream failures end the call with the error object
            if observed:
                self.record("exception", request.tool_name, started, exc)
            failure = error_object(exc, request.tool_name, request.session_id, kwargs.keys())
        finally:
            self.in_flight -= 1
        if failure is not None:
            raise ToolCallError("internal", failure)
        if observed:
            self.record("stop", request.tool_name, started)
        if not final_sent:
            yield pb.ToolChunk(chunk_id=f"{request.tool_name}-{n + 1}", data=b"", is_final=True)


class _CallPlan:
    """What a call of one tool needs from ``inspect``, computed once when the tool is loaded.

    ``needs_bind`` is False when the explicit unexpected/missing checks of
    :meth:`Dispatcher.prepare` already decide everything ``Signature.bind`` would (no
    positional-only parameters), so the hot path skips the bind. ``known`` and ``required``
    are the parameter names, ``checks`` the annotation checks of the arguments.
    """

    __slots__ = (
        "signature",
        "is_coroutine",
        "is_asyncgen",
        "is_generator",
        "runs_at_home",
        "needs_bind",
        "known",
        "required",
        "checks",
    )

    def __init__(self, tool: ToolSpec) -> None:
        func = tool.func
        self.known = frozenset(p.name for p in tool.parameters)
        self.required = tuple(p.name for p in tool.parameters if p.required)
        self.checks = ArgumentChecks(func)
        self.signature = inspect.signature(func)
        self.is_coroutine = inspect.iscoroutinefunction(func)
        self.is_asyncgen = inspect.isasyncgenfunction(func)
        self.is_generator = inspect.isgeneratorfunction(func)
        # Async tools run on the worker's main loop (the fast transport hands them over).
        self.runs_at_home = self.is_coroutine or self.is_asyncgen
        self.needs_bind = any(
            p.kind is inspect.Parameter.POSITIONAL_ONLY for p in self.signature.parameters.values()
        )


def _rejected(error: Dict[str, Any]) -> ToolCallError:
    """The :class:`ToolCallError` of a call refused before it ran (unknown tool or bad arguments)."""
    return ToolCallError("not_found" if error["type"] == "UnknownToolError" else "invalid_argument", error)


async def _iterate_inline(gen: Iterable[Any]) -> AsyncGenerator[Any, None]:
    """Drive a sync iterator on the calling thread; closing the iterator closes a generator."""
    try:
        for item in gen:
            yield item
    finally:
        close = getattr(gen, "close", None)
        if callable(close):
            close()


async def _aiter(iterator: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """An async generator over an async iterator (so it can be closed like the others)."""
    try:
        async for item in iterator:
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _is_envelope(item: Any) -> bool:
    return isinstance(item, dict) and "data" in item and set(item) <= {"data", "is_final", "metadata"}


def chunk_value(item: Any) -> Any:
    """The value carried by a yielded item (a ``StreamChunk``/envelope's data, or the item)."""
    if isinstance(item, StreamChunk):
        return item.data
    if _is_envelope(item):
        return item["data"]
    return item


def chunk_parts(item: Any) -> Tuple[bytes, bool, Dict[str, str]]:
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
