"""The worker server: ``python -m snakepit_bridge.server --adapter pkg.mod.Class ...``.

Speaks the Snakepit bridge protocol (``snakepit.bridge.BridgeService``) over a Unix socket
(``--address unix:/path``) or loopback TCP, and the framed ``fast`` transport for tool calls
on a second socket when ``SNAKEPIT_FAST_ADDRESS=unix:/path`` is set (see ``_fast``); announces
readiness through ``SNAKEPIT_READY_FILE`` (a second line ``fast:unix:/path`` names the fast socket),
requires the run token from ``SNAKEPIT_AUTH_TOKEN`` on every call, and on SIGTERM stops
accepting calls, lets in-flight ones finish within the grace period, runs the adapter's
``cleanup()`` and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Optional

import grpc

from ._context import env_host_address, host_target
from ._fast import FastServer, fast_address, max_message_bytes
from ._proto import snakepit_bridge_pb2 as pb
from ._proto import snakepit_bridge_pb2_grpc as pb_grpc
from ._servicer import TOKEN_KEY, BridgeServicer, TokenInterceptor, chunk_parts, chunk_value, tool_spec_message
from ._threaded import is_thread_safe

__all__ = ["BridgeServicer", "chunk_parts", "chunk_value", "main", "parse_args", "serve", "tool_spec_message"]

log = logging.getLogger("snakepit_bridge.server")


class AdapterLoadError(RuntimeError):
    """The adapter class could not be imported."""


def load_adapter_class(spec: str) -> Any:
    """Import ``module.Class`` with an error message that says what to check.

    Returns what the module holds under that name: the adapter class (any callable that
    builds the adapter with no arguments works).
    """
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
        raise AdapterLoadError(f"python adapter '{spec}': module '{module_name}' has no class '{class_name}' (check the adapter path)")
    return cls


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
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


def configure_logging(worker_id: Optional[str] = None) -> None:
    """Log to stderr at ``SNAKEPIT_LOG_LEVEL``; lines name ``worker_id`` when it is known.

    The host reads a spawned worker's stderr itself, but a worker forked by a zygote shares
    the zygote's, so its lines say which worker wrote them.
    """
    level = (os.environ.get("SNAKEPIT_LOG_LEVEL") or "error").lower()
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
              "none": logging.CRITICAL + 10}
    who = f" worker={worker_id}" if worker_id else ""
    logging.basicConfig(stream=sys.stderr, level=levels.get(level, logging.ERROR),
                        format=f"%(asctime)s %(levelname)s{who} %(name)s: %(message)s")


def write_ready_file(path: str, content: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class StartupError(RuntimeError):
    """The worker cannot start (adapter construction, initialize(), binding); exit 1."""


def _listen(server: grpc.aio.Server, args: argparse.Namespace) -> str:
    """Bind the server; returns what the ready file announces."""
    target: str
    ready: Optional[str]
    if args.address and args.address.startswith("unix:"):
        target, ready = args.address, args.address
    elif args.address:
        target = args.address[4:] if args.address.startswith("tcp:") else args.address
        ready = None
    else:
        target, ready = f"127.0.0.1:{args.port or 0}", None
    try:
        port = server.add_insecure_port(target)
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {args.address or target}: {exc}") from exc
    if ready is not None:
        return ready
    if args.address:
        return f"tcp:{target.rsplit(':', 1)[0]}:{port}"
    return str(port)  # legacy --port mode: the bare port, as the original wrote it


async def _start_adapter(args: argparse.Namespace) -> Any:
    cls = load_adapter_class(args.adapter)
    try:
        adapter = cls()
    except Exception as exc:  # noqa: BLE001 - reported with the adapter's name
        raise StartupError(f"python adapter '{args.adapter}' could not be created: {type(exc).__name__}: {exc}") from exc
    if args.mode == "threaded":
        if not is_thread_safe(adapter):
            message = (
                f"python adapter '{args.adapter}' does not declare __thread_safe__ = True "
                "but runs with --mode threaded (several calls at once)"
            )
            if args.thread_safety_check:
                raise StartupError(message + "; subclass ThreadSafeAdapter and set __thread_safe__ = True")
            log.warning("%s", message)
        if hasattr(adapter, "max_workers"):
            adapter.max_workers = max(1, args.max_workers or 1)
    initialize = getattr(adapter, "initialize", None)
    try:
        if callable(initialize):
            await _maybe_await(initialize())
    except Exception as exc:  # noqa: BLE001 - reported with the adapter's name
        raise StartupError(f"python adapter '{args.adapter}' failed in initialize(): {type(exc).__name__}: {exc}") from exc
    if args.mode == "threaded" and args.thread_safety_check:
        from .thread_safety_checker import enable_checking

        # Runtime checks: concurrent access to methods not serialised by @thread_safe_method,
        # and libraries known not to be thread-safe, are warned about on stderr.
        enable_checking().check_library_safety()
    return adapter


async def serve(args: argparse.Namespace) -> int:
    """Run the worker until SIGTERM/SIGINT (or a lost parent/host); returns the exit code."""
    if _truthy(os.environ.get("SNAKEPIT_PROCESS_GROUP")) and os.getpgid(0) != os.getpid():
        try:
            os.setsid()
        except OSError:
            pass  # EPERM: already a group leader
    _watch_host_pipe()
    adapter = await _start_adapter(args)
    threads = max(1, args.max_workers or 1) if args.mode == "threaded" else 1
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="snakepit-tool")
    token = os.environ.get("SNAKEPIT_AUTH_TOKEN") or None
    host_address = args.host_address or env_host_address()
    servicer = BridgeServicer(adapter, token, executor, host_address, args.worker_id, serial=args.mode == "process")
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1), ("grpc.so_reuseport", 0)]
    server = grpc.aio.server(options=options, interceptors=[TokenInterceptor(token)])
    pb_grpc.add_BridgeServiceServicer_to_server(servicer, server)
    ready = _listen(server, args)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fast = _start_fast(servicer, token, args, loop)
    if fast is not None:
        ready += f"\nfast:unix:{fast.path}"
    background = [asyncio.ensure_future(_watch_parent(stop))]
    if host_address:
        await _register_tools(servicer, host_address, token, args.worker_id)
        hb = heartbeat_config(args)
        if hb.get("enabled"):
            background.append(asyncio.ensure_future(_heartbeat(hb, host_address, token, stop)))
    ready_file = os.environ.get("SNAKEPIT_READY_FILE")
    if ready_file:
        write_ready_file(ready_file, ready)
    log.info("worker %s ready on %s with %d tools", args.worker_id, ready, len(servicer.tools))
    await stop.wait()
    log.info("shutting down: waiting up to %d ms for %d in-flight calls", args.shutdown_grace_ms, servicer.in_flight)
    servicer.close()
    grace = max(0, args.shutdown_grace_ms) / 1000.0
    await asyncio.gather(server.stop(grace), *([fast.stop(grace)] if fast is not None else []))
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    try:
        cleanup = getattr(adapter, "cleanup", None)
        if callable(cleanup):
            await _maybe_await(cleanup())
    except Exception:  # noqa: BLE001 - cleanup failures are logged, exit stays clean
        log.exception("adapter cleanup failed")
    executor.shutdown(wait=False, cancel_futures=True)
    return 0


def _start_fast(
    servicer: BridgeServicer, token: Optional[str], args: argparse.Namespace, loop: asyncio.AbstractEventLoop
) -> Optional[FastServer]:
    """Open the ``fast`` transport's socket when the host asked for one (SNAKEPIT_FAST_ADDRESS)."""
    path = fast_address()
    if path is None:
        return None
    fast = FastServer(
        servicer.dispatcher,
        token,
        path,
        inline=args.mode == "process",
        home_loop=loop,
        max_message_bytes=max_message_bytes(),
    )
    try:
        fast.start()
    except OSError as exc:
        raise StartupError(f"cannot listen on unix:{path} (fast transport): {exc}") from exc
    return fast


def _host_gone(reason: str) -> None:
    """The host is gone: nobody will read our answers. Kill our process group and exit now.

    We are the group leader (the host starts us with ``process_group(0)``), so the group holds
    exactly us and what our tools started (``subprocess`` children inherit it); SIGKILL to it
    leaves nothing behind. When we are not a leader (started by hand), only we exit.
    """
    log.warning("%s; killing worker process group and exiting", reason)
    try:
        logging.shutdown()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - nothing may stop the exit
        pass
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


def _watch_host_pipe() -> None:
    """Block on stdin, the host's pipe (``SNAKEPIT_HOST_PIPE=stdin``): end of file means the host
    process is gone (the kernel closed its end, even after a SIGKILL), so react at once."""
    if os.environ.get("SNAKEPIT_HOST_PIPE") != "stdin":
        return

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass  # the host never writes; anything read is ignored
        except OSError:
            pass
        _host_gone("host pipe closed (the host process is gone)")

    threading.Thread(target=watch, name="snakepit-host-pipe", daemon=True).start()


async def _watch_parent(stop: asyncio.Event) -> None:
    """Exit when the host that started us is gone: the fallback for workers without the host pipe.

    A worker forked by the zygote is the zygote's child, not the host's: it watches a pidfd on
    the host instead (``SNAKEPIT_HOST_PIDFD``, inherited from the zygote), so killing the
    zygote leaves it serving while the host's death still ends it; otherwise it watches for
    being re-parented away from ``SNAKEPIT_PARENT_PID``.
    """
    pidfd = os.environ.get("SNAKEPIT_HOST_PIDFD", "")
    if pidfd.isdigit():
        loop = asyncio.get_running_loop()
        loop.add_reader(int(pidfd), _host_gone, "host process is gone (its pidfd fired)")
        try:
            await stop.wait()
        finally:
            loop.remove_reader(int(pidfd))
        return
    raw = os.environ.get("SNAKEPIT_PARENT_PID")
    if not raw or not raw.isdigit():
        return
    parent = int(raw)
    while not stop.is_set():
        if os.getppid() != parent:
            _host_gone(f"host process {parent} is gone")
        await asyncio.sleep(0.5)


async def _register_tools(
    servicer: BridgeServicer, host_address: str, token: Optional[str], worker_id: Optional[str]
) -> None:
    """Announce the adapter's tools to the host once (best effort: failures are logged)."""
    target, options = host_target(host_address)
    request = pb.RegisterToolsRequest(session_id="", worker_id=worker_id or "")
    for spec in servicer.tools.values():
        # ToolRegistration has ToolSpec's fields and numbers: convert through the wire form.
        request.tools.add().ParseFromString(tool_spec_message(spec).SerializeToString())
    metadata = [(TOKEN_KEY, token)] if token else []
    try:
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            stub = pb_grpc.BridgeServiceStub(channel)
            response = await stub.RegisterTools(request, timeout=2.0, metadata=metadata)
        if not response.success:
            log.warning("the host at %s refused the tool registration: %s", host_address, response.error_message)
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


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``python -m snakepit_bridge.server``; returns the exit code."""
    args = parse_args(argv)
    configure_logging(args.worker_id)
    if not args.adapter:
        print("snakepit_bridge.server: --adapter module.Class is required", file=sys.stderr)
        return 2
    if args.health_check:
        try:
            load_adapter_class(args.adapter)
        except AdapterLoadError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        print(f"ok: python adapter '{args.adapter}' imports", file=sys.stderr)
        return 0
    try:
        code = asyncio.run(serve(args))
    except (AdapterLoadError, StartupError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if any(t.name.startswith("snakepit-tool") and t.is_alive() for t in threading.enumerate()):
        # A sync tool outlived the grace period: its thread cannot be interrupted, and waiting
        # for it at interpreter exit would keep the process alive past the host's grace.
        log.warning("a tool call is still running after the grace period; exiting without waiting for it")
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
