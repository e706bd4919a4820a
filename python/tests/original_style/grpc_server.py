#!/usr/bin/env python3
"""A stand-in for the original Snakepit worker server (``grpc_server.py``), for tests.

It speaks the original launch contract exactly as ``shared/protocol.md`` describes it, and it
fails loudly (stderr, a non-zero exit or an error naming ``HostContractViolation``) whenever
the host deviates from it:

- argv: only the original's flags (argparse exits 2 on anything else, e.g. ``--address``);
- start-up: ping the host at ``--elixir-address`` (retrying, then exit 1 without a ready
  file), bind ``127.0.0.1:<--port>``, write the bound port to ``$SNAKEPIT_READY_FILE``
  (``.tmp``, fsync, rename);
- every ``ExecuteTool``/``ExecuteStreamingTool``: ``InitializeSession`` on the host first,
  ``register_with_session`` once per session, then the adapter's ``execute_tool(tool_name=,
  arguments=, context=)`` (or a ``@tool`` method); parameters must be JSON ``Any`` values and
  the correlation id must arrive both as gRPC metadata and in the request metadata;
- results are encoded as the original encodes them: numbers as floats, ``None`` and tuples
  as strings; failures as ``success=false`` with the JSON error object;
- the heartbeat to the host starts after the first session call (dependent by default: after
  ``max_missed_heartbeats`` failures the server SIGTERMs itself);
- it prints a span line to stdout per call unless ``SNAKEPIT_OTEL_CONSOLE=false``.
"""

import argparse
import asyncio
import importlib
import inspect
import json
import os
import signal
import sys
import time
import traceback

import grpc

from snakepit_bridge._proto import snakepit_bridge_pb2 as pb2
from snakepit_bridge._proto import snakepit_bridge_pb2_grpc as pb2_grpc
from snakepit_bridge.heartbeat import HeartbeatClient, HeartbeatConfig
from snakepit_bridge.session_context import SessionContext

KNOWN_TYPES = {"string", "integer", "float", "boolean", "map", "list", "embedding", "tensor", "binary"}
HOST_PING_ATTEMPTS = int(os.environ.get("STAND_IN_HOST_PING_ATTEMPTS", "240"))


class HostContractViolation(Exception):
    """The host did something the original contract does not allow."""


def complain(message):
    print(f"stand-in grpc_server: HOST CONTRACT VIOLATION: {message}", file=sys.stderr, flush=True)


def span(name, **attrs):
    if os.environ.get("SNAKEPIT_OTEL_CONSOLE", "true").lower() != "false":
        print(json.dumps({"name": name, "attributes": attrs, "time": time.time()}), flush=True)


def encode_result(value):
    """The original's result encoding: numbers become floats, None and tuples strings."""
    if isinstance(value, bool):
        kind, plain = "boolean", value
    elif isinstance(value, (int, float)):
        kind, plain = "float", float(value)
    elif value is None or isinstance(value, tuple):
        kind, plain = "string", str(value)
    elif isinstance(value, str):
        kind, plain = "string", value
    elif isinstance(value, list):
        kind, plain = "list", value
    else:
        kind, plain = "map", value
    return pb2.ExecuteToolResponse(
        success=True,
        result={"type_url": f"type.googleapis.com/snakepit.{kind}", "value": json.dumps(plain).encode()},
    )


def error_json(exc, tool, session_id, keys):
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return json.dumps({
        "type": type(exc).__name__,
        "message": str(exc),
        "stacktrace": [line.rstrip("\n") for line in lines],
        "traceback": "".join(lines),
        "context": {"tool": tool, "session_id": session_id, "argument_keys": sorted(keys)},
    })


class StandInServicer(pb2_grpc.BridgeServiceServicer):
    def __init__(self, adapter, host_stub, heartbeat_config):
        self.adapter = adapter
        self.host_stub = host_stub
        self.registered_sessions = set()
        self.heartbeat_config = heartbeat_config
        self.heartbeat = None

    # -- what the host must get right ------------------------------------------------------
    def _decode_parameters(self, request, context):
        correlation = request.metadata.get("correlation_id")
        header = dict(context.invocation_metadata() or ()).get("x-snakepit-correlation-id")
        if not correlation or correlation != header:
            raise HostContractViolation(
                f"correlation id must be in the request metadata and the x-snakepit-correlation-id header "
                f"(got {correlation!r} and {header!r})"
            )
        arguments = {}
        for key, any_msg in request.parameters.items():
            prefix, _, kind = any_msg.type_url.rpartition(".")
            if prefix != "type.googleapis.com/snakepit" or kind not in KNOWN_TYPES:
                raise HostContractViolation(f"parameter {key!r} has type_url {any_msg.type_url!r}")
            try:
                arguments[key] = json.loads(any_msg.value)
            except ValueError as exc:
                raise HostContractViolation(f"parameter {key!r} is not JSON: {bytes(any_msg.value)[:40]!r}") from exc
        for key, raw in request.binary_parameters.items():
            arguments[key] = bytes(raw)  # never unpickled
        return arguments

    def _enter_session(self, request):
        try:
            reply = self.host_stub.InitializeSession(pb2.InitializeSessionRequest(session_id=request.session_id), timeout=5)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise HostContractViolation(f"the host did not answer InitializeSession: {exc.code()} {exc.details()}") from exc
        else:
            if not reply.success:
                raise HostContractViolation(f"the host refused InitializeSession: {reply.error_message}")
        session_context = SessionContext(self.host_stub, request.session_id)
        if hasattr(self.adapter, "set_session_context"):
            self.adapter.set_session_context(session_context)
        if request.session_id not in self.registered_sessions:
            self.registered_sessions.add(request.session_id)
            if hasattr(self.adapter, "register_with_session"):
                names = self.adapter.register_with_session(request.session_id, self.host_stub)
                if not names and getattr(self.adapter, "get_tools", lambda: {})():
                    raise HostContractViolation("the host did not accept RegisterTools")
        if self.heartbeat is None and self.heartbeat_config.enabled:
            self.heartbeat = HeartbeatClient(self.host_stub, request.session_id, self.heartbeat_config)
            self.heartbeat.start()
        return session_context

    def _invoke(self, request, arguments, session_context):
        execute = getattr(self.adapter, "execute_tool", None)
        if callable(execute):
            return execute(tool_name=request.tool_name, arguments=arguments, context=session_context)
        method = getattr(self.adapter, request.tool_name, None)
        if method is None:
            raise ValueError(f"Unknown tool: {request.tool_name}")
        return method(**arguments)

    # -- RPCs ------------------------------------------------------------------------------
    async def Ping(self, request, context):
        reply = pb2.PingResponse(message=f"Pong from Python: {request.message}")
        reply.server_time.GetCurrentTime()
        return reply

    async def ExecuteTool(self, request, context):
        span("ExecuteTool", tool=request.tool_name, session=request.session_id)
        started = time.time()
        arguments = {}
        try:
            arguments = self._decode_parameters(request, context)
            session_context = self._enter_session(request)
            result = self._invoke(request, arguments, session_context)
            if inspect.isawaitable(result):
                result = await result
            if inspect.isgenerator(result):
                result = list(result)
            reply = encode_result(result)
        except HostContractViolation as exc:
            complain(str(exc))
            return pb2.ExecuteToolResponse(success=False, error_message=error_json(exc, request.tool_name, request.session_id, arguments))
        except Exception as exc:  # noqa: BLE001 - every tool failure becomes the JSON error object
            return pb2.ExecuteToolResponse(success=False, error_message=error_json(exc, request.tool_name, request.session_id, arguments))
        reply.execution_time_ms = int((time.time() - started) * 1000)
        return reply

    async def ExecuteStreamingTool(self, request, context):
        span("ExecuteStreamingTool", tool=request.tool_name, session=request.session_id)
        if not request.stream:
            complain("ExecuteStreamingTool without stream=true")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "HostContractViolation: stream must be true")
        arguments = {}
        failure = None
        n = 0
        try:
            arguments = self._decode_parameters(request, context)
            session_context = self._enter_session(request)
            produced = self._invoke(request, arguments, session_context)
            if inspect.isasyncgen(produced):
                items = [item async for item in produced]
            elif inspect.isgenerator(produced) or hasattr(produced, "__next__"):
                items = produced
            else:
                items = [produced]
            for item in items:
                n += 1
                data = item.encode() if isinstance(item, str) else json.dumps(item).encode()
                yield pb2.ToolChunk(chunk_id=f"{request.tool_name}-{n}", data=data)
        except HostContractViolation as exc:
            complain(str(exc))
            failure = error_json(exc, request.tool_name, request.session_id, arguments)
        except Exception as exc:  # noqa: BLE001 - mid-stream failure aborts with the error object
            failure = error_json(exc, request.tool_name, request.session_id, arguments)
        if failure is not None:
            await context.abort(grpc.StatusCode.INTERNAL, failure)
        yield pb2.ToolChunk(chunk_id=f"{request.tool_name}-{n + 1}", data=b"", is_final=True)


def load_adapter(path):
    module_name, _, class_name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="stand-in for the original snakepit grpc_server.py")
    p.add_argument("--adapter", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--elixir-address", default=os.environ.get("SNAKEPIT_GRPC_ADDRESS", "localhost:50051"))
    p.add_argument("--snakepit-run-id", "--run-id", dest="run_id", default="")
    p.add_argument("--health-check", action="store_true")
    p.add_argument("--heartbeat-enabled", action="store_true", default=None)
    p.add_argument("--heartbeat-interval-ms", type=int)
    p.add_argument("--heartbeat-timeout-ms", type=int)
    p.add_argument("--heartbeat-max-missed", type=int)
    p.add_argument("--heartbeat-initial-delay-ms", type=int)
    dep = p.add_mutually_exclusive_group()
    dep.add_argument("--heartbeat-dependent", dest="heartbeat_dependent", action="store_true", default=None)
    dep.add_argument("--heartbeat-independent", dest="heartbeat_dependent", action="store_false")
    return p.parse_args(argv)


def heartbeat_config(args):
    options = {
        "enabled": args.heartbeat_enabled,
        "interval_ms": args.heartbeat_interval_ms,
        "timeout_ms": args.heartbeat_timeout_ms,
        "max_missed_heartbeats": args.heartbeat_max_missed,
        "initial_delay_ms": args.heartbeat_initial_delay_ms,
        "dependent": args.heartbeat_dependent,
    }
    config = HeartbeatConfig.from_mapping({k: v for k, v in options.items() if v is not None})
    raw = os.environ.get("SNAKEPIT_HEARTBEAT_CONFIG")
    if raw:
        config = HeartbeatConfig.from_mapping(json.loads(raw), defaults=config)
    return config


def wait_for_host(address):
    channel = grpc.insecure_channel(address)
    stub = pb2_grpc.BridgeServiceStub(channel)
    for _ in range(HOST_PING_ATTEMPTS):
        try:
            stub.Ping(pb2.PingRequest(message="python-worker"), timeout=1)
            return stub
        except grpc.RpcError:
            time.sleep(0.5)
    print(f"stand-in grpc_server: the host at {address} never answered Ping", file=sys.stderr, flush=True)
    sys.exit(1)


async def serve(args):
    if (os.environ.get("SNAKEPIT_PROCESS_GROUP") or "").lower() in ("1", "true", "yes"):
        os.setsid()
    ready_file = os.environ.get("SNAKEPIT_READY_FILE")
    if not ready_file:
        complain("SNAKEPIT_READY_FILE is not set")
        return 1
    host_stub = wait_for_host(args.elixir_address)
    adapter = load_adapter(args.adapter)()
    if hasattr(adapter, "initialize"):
        outcome = adapter.initialize()
        if inspect.isawaitable(outcome):
            await outcome
    servicer = StandInServicer(adapter, host_stub, heartbeat_config(args))
    server = grpc.aio.server()
    pb2_grpc.add_BridgeServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    with open(ready_file + ".tmp", "w") as f:
        f.write(str(port))
        f.flush()
        os.fsync(f.fileno())
    os.rename(ready_file + ".tmp", ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if servicer.heartbeat is not None:
        await servicer.heartbeat.stop()
    await server.stop(2)
    return 0


def main():
    args = parse_args()
    if args.health_check:
        load_adapter(args.adapter)
        return 0
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
