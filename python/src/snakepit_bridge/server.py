"""The worker server: ``python -m snakepit_bridge.server --adapter pkg.mod.Class ...``.

Speaks the Snakepit bridge protocol (``snakepit.bridge.BridgeService``) over a Unix socket
(``--address unix:/path``) or loopback TCP, announces readiness through ``SNAKEPIT_READY_FILE``,
requires the run token from ``SNAKEPIT_AUTH_TOKEN`` on every call, and on SIGTERM stops
accepting calls, lets in-flight ones finish within the grace period, runs the adapter's
``cleanup()`` and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import hmac
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import time
from typing import Any, Dict, Optional

import grpc

from ._adapter import BaseAdapter, StreamChunk, ToolSpec
from ._context import SessionContext, env_host_address, host_target
from ._proto import snakepit_bridge_pb2 as pb
from ._proto import snakepit_bridge_pb2_grpc as pb_grpc
from ._wire import decode_any, encode_any, encode_json, error_object, simple_error

log = logging.getLogger("snakepit_bridge.server")

TOKEN_KEY = "x-snakepit-token"
_SENTINEL = object()


class AdapterLoadError(RuntimeError):
    """The adapter class could not be imported or instantiated."""


def load_adapter_class(spec: str):
    """Import ``module.Class`` with an error message that says what to check."""
    module_name, _, class_name = spec.rpartition(".")
    if not module_name:
        raise AdapterLoadError(f"python adapter '{spec}' is not a 'module.Class' path")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is reported the same way
        raise AdapterLoadError(
            f"python adapter '{spec}' could not be imported: {type(exc).__name__}: {exc} (check PYTHONPATH or adapter_args)"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AdapterLoadError(f"python adapter '{spec}': module '{module_name}' has no class '{class_name}'")
    return cls


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class BridgeServicer(pb_grpc.BridgeServiceServicer):
    """Serves one adapter instance."""

    def __init__(self, adapter: BaseAdapter, token: Optional[str], executor, host_address: Optional[str]) -> None:
        self.adapter = adapter
        self.tools: Dict[str, ToolSpec] = adapter.get_tools()
        self.token = token
        self.executor = executor
        self.host_address = host_address
        self.sessions: Dict[str, Dict[str, Any]] = {}
        self.in_flight = 0

    # -- helpers -------------------------------------------------------------------------
    async def _authorize(self, context) -> None:
        if not self.token:
            return
        sent = dict(context.invocation_metadata() or ()).get(TOKEN_KEY, "")
        if not hmac.compare_digest(str(sent).encode(), self.token.encode()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong x-snakepit-token")

    def _session(self, session_id: str, metadata=None) -> Dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            session = {"created_at": time.time(), "metadata": dict(metadata or {})}
            self.sessions[session_id] = session
        return session

    def _prepare(self, request):
        """Find the tool and bind its arguments; returns (tool, kwargs, error-dict-or-None)."""
        name = request.tool_name
        kwargs: Dict[str, Any] = {k: decode_any(v) for k, v in request.parameters.items()}
        kwargs.update({k: bytes(v) for k, v in request.binary_parameters.items()})
        tool = self.tools.get(name)
        if tool is None:
            available = ", ".join(sorted(self.tools)) or "(none)"
            return None, kwargs, simple_error(
                "UnknownToolError",
                f"unknown tool '{name}' for adapter {type(self.adapter).__name__}; available tools: {available}",
                name,
                request.session_id,
                kwargs.keys(),
            )
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
        if problems:
            accepted = ", ".join(
                f"{p.name}: {p.type}{'' if p.required else ' = ' + repr(p.default)}" for p in tool.parameters
            )
            return tool, kwargs, simple_error(
                "InvalidArgumentsError",
                f"invalid arguments for tool '{name}': {'; '.join(problems)} (accepted parameters: {accepted or 'none'})",
                name,
                request.session_id,
                kwargs.keys(),
            )
        return tool, kwargs, None

    def _context(self, request, context) -> SessionContext:
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        self._session(request.session_id or "default")
        return SessionContext(
            session_id=request.session_id,
            request_metadata=dict(request.metadata),
            deadline=deadline,
            host_address=self.host_address,
            token=self.token,
        )

    async def _call(self, tool: ToolSpec, kwargs: Dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(tool.func):
            return await tool.func(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(tool.func, **kwargs))

    async def _iterate(self, tool: ToolSpec, kwargs: Dict[str, Any]):
        """Yield a tool's output items as they are produced (no batching)."""
        if inspect.isasyncgenfunction(tool.func):
            async for item in tool.func(**kwargs):
                yield item
            return
        if inspect.isgeneratorfunction(tool.func):
            loop = asyncio.get_running_loop()
            gen = await loop.run_in_executor(self.executor, functools.partial(tool.func, **kwargs))
            try:
                while True:
                    item = await loop.run_in_executor(self.executor, next, gen, _SENTINEL)
                    if item is _SENTINEL:
                        return
                    yield item
            finally:
                gen.close()
            return
        yield StreamChunk(await self._call(tool, kwargs), is_final=True)

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
        return pb.CleanupSessionResponse(success=True, resources_cleaned=1 if removed else 0)

    async def GetSession(self, request, context):
        await self._authorize(context)
        session = self.sessions.get(request.session_id)
        if session is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no session '{request.session_id}'")
        resp = pb.GetSessionResponse(session_id=request.session_id, metadata=session["metadata"], tool_count=len(self.tools))
        resp.created_at.FromNanoseconds(int(session["created_at"] * 1e9))
        return resp

    async def ExecuteTool(self, request, context):
        await self._authorize(context)
        started = time.monotonic()
        tool, kwargs, error = self._prepare(request)
        if error is not None:
            return pb.ExecuteToolResponse(success=False, error_message=json.dumps(error))
        self.in_flight += 1
        try:
            self.adapter.set_session_context(self._context(request, context))
            if tool.is_generator:
                items = [item async for item in self._iterate(tool, kwargs)]
                result: Any = [i.data if isinstance(i, StreamChunk) else i for i in items]
            else:
                result = await self._call(tool, kwargs)
        except Exception as exc:  # noqa: BLE001 - every tool failure becomes a structured error
            log.info("tool %s raised %s: %s", request.tool_name, type(exc).__name__, exc)
            payload = error_object(exc, request.tool_name, request.session_id, kwargs.keys())
            return pb.ExecuteToolResponse(success=False, error_message=json.dumps(payload))
        finally:
            self.in_flight -= 1
        elapsed_ms = int((time.monotonic() - started) * 1000)
        if isinstance(result, (bytes, bytearray, memoryview)):
            return pb.ExecuteToolResponse(success=True, binary_result=bytes(result), execution_time_ms=elapsed_ms)
        return pb.ExecuteToolResponse(success=True, result=encode_any(result), execution_time_ms=elapsed_ms)

    async def ExecuteStreamingTool(self, request, context):
        await self._authorize(context)
        tool, kwargs, error = self._prepare(request)
        if error is not None:
            code = grpc.StatusCode.NOT_FOUND if error["type"] == "UnknownToolError" else grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, json.dumps(error))
        self.in_flight += 1
        n = 0
        final_sent = False
        try:
            self.adapter.set_session_context(self._context(request, context))
            async for item in self._iterate(tool, kwargs):
                n += 1
                data, is_final, metadata = chunk_parts(item)
                yield pb.ToolChunk(chunk_id=f"{request.tool_name}-{n}", data=data, is_final=is_final, metadata=metadata)
                if is_final:
                    final_sent = True
                    break
        except Exception as exc:  # noqa: BLE001 - mid-stream failures abort with the error object
            payload = error_object(exc, request.tool_name, request.session_id, kwargs.keys())
            await context.abort(grpc.StatusCode.INTERNAL, json.dumps(payload))
        finally:
            self.in_flight -= 1
        if not final_sent:
            yield pb.ToolChunk(chunk_id=f"{request.tool_name}-{n + 1}", data=b"", is_final=True)

    async def RegisterTools(self, request, context):
        await self._authorize(context)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "RegisterTools is served by the host, not by a worker")

    async def GetExposedElixirTools(self, request, context):
        await self._authorize(context)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetExposedElixirTools is served by the host, not by a worker")

    async def ExecuteElixirTool(self, request, context):
        await self._authorize(context)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "ExecuteElixirTool is served by the host, not by a worker")


def chunk_parts(item: Any):
    """Split a yielded item into (data bytes, is_final, metadata) per the protocol."""
    is_final = False
    metadata: Dict[str, str] = {}
    if isinstance(item, StreamChunk):
        is_final, metadata, item = item.is_final, dict(item.metadata or {}), item.data
    elif isinstance(item, dict) and "data" in item and set(item) <= {"data", "is_final", "metadata"}:
        is_final = bool(item.get("is_final", False))
        metadata = {str(k): str(v) for k, v in (item.get("metadata") or {}).items()}
        item = item["data"]
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item), is_final, metadata
    if isinstance(item, str):
        return item.encode(), is_final, metadata
    return encode_json(item), is_final, metadata


def tool_spec_message(spec: ToolSpec) -> pb.ToolSpec:
    msg = pb.ToolSpec(name=spec.name, description=spec.description, supports_streaming=spec.supports_streaming)
    for p in spec.parameters:
        param = msg.parameters.add(name=p.name, type=p.type, required=p.required)
        if not p.required:
            param.default_value.CopyFrom(encode_any(p.default))
    if spec.required_variables:
        msg.metadata["required_variables"] = ",".join(spec.required_variables)
    return msg


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m snakepit_bridge.server", description="snakepit bridge worker server")
    p.add_argument("--adapter", help="adapter class, module.Class")
    p.add_argument("--address", help="where to listen: unix:/path/worker.sock or tcp:127.0.0.1:0")
    p.add_argument("--port", type=int, default=None, help="legacy: TCP port on 127.0.0.1 (0 = any)")
    p.add_argument("--elixir-address", "--host-address", dest="host_address", default=None)
    p.add_argument("--snakepit-run-id", "--run-id", dest="run_id", default=None)
    p.add_argument("--worker-id", default=None)
    p.add_argument("--health-check", action="store_true")
    p.add_argument("--mode", choices=["process", "threaded"], default="process")
    p.add_argument("--max-workers", type=int, default=None)
    p.add_argument("--thread-safety-check", action="store_true")
    p.add_argument("--shutdown-grace-ms", type=int, default=5000)
    p.add_argument("--heartbeat-enabled", action="store_true", default=None)
    p.add_argument("--heartbeat-interval-ms", type=int, default=None)
    p.add_argument("--heartbeat-timeout-ms", type=int, default=None)
    p.add_argument("--heartbeat-max-missed", type=int, default=None)
    p.add_argument("--heartbeat-initial-delay-ms", type=int, default=None)
    dep = p.add_mutually_exclusive_group()
    dep.add_argument("--heartbeat-dependent", dest="heartbeat_dependent", action="store_true", default=None)
    dep.add_argument("--heartbeat-independent", dest="heartbeat_dependent", action="store_false")
    return p.parse_args(argv)


def heartbeat_config(args: argparse.Namespace) -> Dict[str, Any]:
    """Heartbeat settings: defaults, then flags, then SNAKEPIT_HEARTBEAT_CONFIG (JSON) on top."""
    cfg: Dict[str, Any] = {"enabled": True, "interval_ms": 2000, "timeout_ms": 10000, "max_missed_heartbeats": 3,
                           "initial_delay_ms": 0, "dependent": True}
    for key, value in (("enabled", args.heartbeat_enabled), ("interval_ms", args.heartbeat_interval_ms),
                       ("timeout_ms", args.heartbeat_timeout_ms), ("max_missed_heartbeats", args.heartbeat_max_missed),
                       ("initial_delay_ms", args.heartbeat_initial_delay_ms), ("dependent", args.heartbeat_dependent)):
        if value is not None:
            cfg[key] = value
    raw = os.environ.get("SNAKEPIT_HEARTBEAT_CONFIG")
    if raw:
        try:
            cfg.update(json.loads(raw))
        except ValueError:
            log.warning("SNAKEPIT_HEARTBEAT_CONFIG is not JSON; ignored")
    return cfg


def configure_logging() -> None:
    level = (os.environ.get("SNAKEPIT_LOG_LEVEL") or "error").lower()
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
              "none": logging.CRITICAL + 10}
    logging.basicConfig(stream=sys.stderr, level=levels.get(level, logging.ERROR),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def write_ready_file(path: str, content: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def serve(args: argparse.Namespace) -> int:
    if _truthy(os.environ.get("SNAKEPIT_PROCESS_GROUP")):
        try:
            os.setsid()
        except OSError:
            pass  # already a group leader
    adapter = load_adapter_class(args.adapter)()
    await _maybe_await(adapter.initialize())
    threads = max(1, args.max_workers or 1) if args.mode == "threaded" else 1
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="snakepit-tool")
    token = os.environ.get("SNAKEPIT_AUTH_TOKEN") or None
    host_address = args.host_address or env_host_address()
    servicer = BridgeServicer(adapter, token, executor, host_address)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1), ("grpc.so_reuseport", 0)]
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=None)
    pb_grpc.add_BridgeServiceServicer_to_server(servicer, server)
    if args.address and args.address.startswith("unix:"):
        server.add_insecure_port(args.address)
        ready = args.address
    elif args.address:
        hostport = args.address[4:] if args.address.startswith("tcp:") else args.address
        host = hostport.rsplit(":", 1)[0]
        port = server.add_insecure_port(hostport)
        ready = f"tcp:{host}:{port}"
    else:
        port = server.add_insecure_port(f"127.0.0.1:{args.port or 0}")
        ready = str(port)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    background = [asyncio.ensure_future(_watch_parent(stop))]
    if host_address:
        background.append(asyncio.ensure_future(_register_tools(servicer, host_address, token, args.worker_id)))
        hb = heartbeat_config(args)
        if hb.get("enabled"):
            background.append(asyncio.ensure_future(_heartbeat(hb, host_address, token, stop)))
    ready_file = os.environ.get("SNAKEPIT_READY_FILE")
    if ready_file:
        write_ready_file(ready_file, ready)
    log.info("worker %s ready on %s with %d tools", args.worker_id, ready, len(servicer.tools))
    await stop.wait()
    log.info("shutting down: waiting up to %d ms for %d in-flight calls", args.shutdown_grace_ms, servicer.in_flight)
    await server.stop(args.shutdown_grace_ms / 1000.0)
    for task in background:
        task.cancel()
    try:
        await _maybe_await(adapter.cleanup())
    except Exception:  # noqa: BLE001 - cleanup failures are logged, exit stays clean
        log.exception("adapter cleanup failed")
    executor.shutdown(wait=False, cancel_futures=True)
    return 0


async def _watch_parent(stop: asyncio.Event) -> None:
    """Shut down when the host that started us is gone (we were re-parented)."""
    raw = os.environ.get("SNAKEPIT_PARENT_PID")
    if not raw or not raw.isdigit():
        return
    parent = int(raw)
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("host process %d is gone; shutting down", parent)
            stop.set()
            return
        await asyncio.sleep(0.5)


async def _register_tools(servicer: BridgeServicer, host_address: str, token: Optional[str], worker_id) -> None:
    target, options = host_target(host_address)
    try:
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            stub = pb_grpc.BridgeServiceStub(channel)
            request = pb.RegisterToolsRequest(session_id="", worker_id=worker_id or "")
            for spec in servicer.tools.values():
                msg = tool_spec_message(spec)
                request.tools.add(name=msg.name, description=msg.description, parameters=msg.parameters,
                                  metadata=msg.metadata, supports_streaming=msg.supports_streaming)
            metadata = [(TOKEN_KEY, token)] if token else []
            await stub.RegisterTools(request, timeout=2.0, metadata=metadata)
    except Exception as exc:  # noqa: BLE001 - best effort: the host may not serve registrations
        log.warning("could not register tools with the host at %s: %s", host_address, exc)


async def _heartbeat(cfg: Dict[str, Any], host_address: str, token: Optional[str], stop: asyncio.Event) -> None:
    """Ping the host; in dependent mode, shut down after max_missed_heartbeats misses."""
    await asyncio.sleep(cfg.get("initial_delay_ms", 0) / 1000.0)
    target, options = host_target(host_address)
    missed = 0
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = pb_grpc.BridgeServiceStub(channel)
        metadata = [(TOKEN_KEY, token)] if token else []
        while not stop.is_set():
            try:
                await stub.Heartbeat(pb.HeartbeatRequest(), timeout=cfg["timeout_ms"] / 1000.0, metadata=metadata)
                missed = 0
            except grpc.RpcError as exc:
                missed += 1
                log.warning("heartbeat to host missed (%d): %s", missed, exc.code())
                if missed >= cfg["max_missed_heartbeats"] and cfg.get("dependent", True):
                    log.error("host unreachable; shutting down")
                    stop.set()
                    return
            await asyncio.sleep(cfg["interval_ms"] / 1000.0)


def main(argv=None) -> int:
    configure_logging()
    args = parse_args(argv)
    if not args.adapter:
        print("snakepit_bridge.server: --adapter module.Class is required", file=sys.stderr)
        return 2
    if args.health_check:
        try:
            load_adapter_class(args.adapter)
        except AdapterLoadError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        print(f"ok: {args.adapter} imports", file=sys.stderr)
        return 0
    try:
        return asyncio.run(serve(args))
    except AdapterLoadError as exc:
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
