"""The zygote: ``python -m snakepit_bridge.zygote --control PATH [--preload MOD]... --adapter pkg.mod.Class``.

One preloaded process per pool. It imports grpc, the generated stubs, ``snakepit_bridge``, the
adapter's module and the ``--preload`` modules once, creates no channel, server, event loop or
thread, then forks workers on request. Each forked child resets what must not be inherited and
runs the same serve path as ``python -m snakepit_bridge.server`` with the arguments and
environment the host sent, exactly as a spawned worker would.

Control protocol: newline-delimited JSON on a Unix socket inside the run's private directory.
The first message on a connection must be ``{"op": "hello", "token": <run token>}``; anything
else, or a wrong token, closes the connection. Then:

- ``{"op": "fork", "id": N, "args": [...], "env": {...}}`` -> ``{"id": N, "ok": true, "pid": P,
  "start_time": T}`` (``T`` from ``/proc/P/stat``, read before the child can be reaped), or
  ``{"id": N, "ok": false, "error": "..."}``.
- Unsolicited ``{"exit": P, "status": "exit status 0", "code": 0}`` (or ``"signal": 9`` for a
  killed child) when a child ends (the zygote reaps it); the host reads the code or signal.

Start-up result: ``SNAKEPIT_READY_FILE`` receives ``{"status": "ready", "pid": P}`` once the
control socket listens, or ``{"status": "unsafe", "reason": "..."}`` when forking would be unsafe
(threads running or CUDA initialised after the imports); the host then spawns instead. An import
failure prints the error on stderr and exits 1.
"""

from __future__ import annotations

import os

# Before anything imports grpc: its fork handlers must stay off (we fork before any grpc object exists).
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "0"

import argparse  # noqa: E402
import hmac  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from typing import Any, Dict, List, Optional, Tuple, Union  # noqa: E402

import grpc  # noqa: E402,F401 - preloaded for the children

from . import server, telemetry  # noqa: E402
from ._proto import snakepit_bridge_pb2, snakepit_bridge_pb2_grpc  # noqa: E402,F401 - preloaded

__all__ = ["fork_hazards", "main"]

log = logging.getLogger("snakepit_bridge.zygote")

#: Set in a forked child: the fd of a pidfd on the host, which becomes readable when the host exits.
HOST_PIDFD_ENV = "SNAKEPIT_HOST_PIDFD"


def _parse(argv: Optional[List[str]]) -> Tuple[argparse.Namespace, List[str]]:
    p = argparse.ArgumentParser(prog="python -m snakepit_bridge.zygote", add_help=True)
    p.add_argument("--control", required=True, help="path of the control socket to listen on")
    p.add_argument("--preload", action="append", default=[], help="a module to import before forking")
    return p.parse_known_args(argv)


def fork_hazards() -> List[str]:
    """What makes forking this process unsafe now: running threads, an initialised CUDA driver."""
    reasons = []
    try:
        tasks = len(os.listdir("/proc/self/task"))
    except OSError:
        tasks = threading.active_count()
    if tasks > 1:
        names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        what = ", ".join(names) if names else "native threads"
        reasons.append(f"{tasks - 1} thread(s) besides the main one are running ({what})")
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is not None and cuda.is_initialized():
            reasons.append("CUDA was initialised (torch.cuda)")
    except Exception:  # noqa: BLE001 - a broken torch install is not our concern here
        pass
    try:
        with open("/proc/self/maps") as maps:
            if any("libcuda.so" in line for line in maps):
                reasons.append("the CUDA driver library (libcuda.so) is loaded")
    except OSError:
        pass
    return reasons


def _start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot); the host checks it before trusting the pid."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[19])


def _host_pidfd() -> Optional[int]:
    """A pidfd on the host that started us, proven to be our parent after it was opened."""
    raw = os.environ.get("SNAKEPIT_PARENT_PID", "")
    if not raw.isdigit() or not hasattr(os, "pidfd_open"):
        return None
    try:
        fd = os.pidfd_open(int(raw))
    except OSError:
        return None
    if os.getppid() != int(raw):
        os.close(fd)
        return None
    return fd


class _Zygote:
    def __init__(self, control: str, token: Optional[str], host_fd: Optional[int]):
        self.token = token or ""
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(control)
        except FileNotFoundError:
            pass
        self.listener.bind(control)
        os.chmod(control, 0o600)
        self.listener.listen(4)
        self.conn: Optional[socket.socket] = None
        self.authed = False
        self.buffer = b""
        self.host_fd = host_fd
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)

    def serve(self) -> int:
        while True:
            watched: List[Union[int, socket.socket]] = [self.listener, self.wake_r]
            if self.conn:
                watched.append(self.conn)
            if self.host_fd is not None:
                watched.append(self.host_fd)
            try:
                readable, _, _ = select.select(watched, [], [])
            except InterruptedError:
                continue
            if self.host_fd is not None and self.host_fd in readable:
                log.warning("host is gone; the zygote exits (its workers watch the host themselves)")
                return 0
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
            self._reap()
            if self.listener in readable:
                conn, _ = self.listener.accept()
                if self.conn is not None:
                    self.conn.close()  # a newer host connection replaces the old one
                self.conn, self.authed, self.buffer = conn, False, b""
            elif self.conn is not None and self.conn in readable:
                self._read_requests()

    def _send(self, message: Dict[str, Any]) -> None:
        if self.conn is None:
            return
        try:
            self.conn.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            self.conn.close()
            self.conn = None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                try:
                    name = signal.Signals(sig).name
                except ValueError:
                    name = "unknown"
                self._send({"exit": pid, "status": f"killed by signal {sig} ({name})", "signal": sig})
            else:
                code = os.waitstatus_to_exitcode(status)
                self._send({"exit": pid, "status": f"exit status {code}", "code": code})

    def _read_requests(self) -> None:
        assert self.conn is not None
        data = self.conn.recv(65536)
        if not data:
            self.conn.close()
            self.conn = None
            return
        self.buffer += data
        while b"\n" in self.buffer and self.conn is not None:
            line, self.buffer = self.buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
            except ValueError:
                self._refuse("the control message is not JSON")
                return
            if not self.authed:
                if request.get("op") == "hello" and hmac.compare_digest(str(request.get("token", "")), self.token):
                    self.authed = True
                    self._send({"ok": True, "pid": os.getpid()})
                else:
                    self._refuse("unauthenticated")
                continue
            if request.get("op") == "fork":
                self._fork(request)
            else:
                self._send({"id": request.get("id"), "ok": False, "error": f"unknown op {request.get('op')!r}"})

    def _refuse(self, why: str) -> None:
        self._send({"ok": False, "error": why})
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def _fork(self, request: Dict[str, Any]) -> None:
        args = [str(a) for a in request.get("args", [])]
        env = {str(k): str(v) for k, v in (request.get("env") or {}).items()}
        try:
            pid = os.fork()
        except OSError as exc:
            self._send({"id": request.get("id"), "ok": False, "error": f"fork failed: {exc}"})
            return
        if pid == 0:
            self._become_worker(args, env)
        try:
            start_time = _start_time(pid)
        except (OSError, IndexError, ValueError) as exc:
            self._send({"id": request.get("id"), "ok": False, "error": f"cannot read the child's start time: {exc}"})
            return
        self._send({"id": request.get("id"), "ok": True, "pid": pid, "start_time": start_time})

    def _become_worker(self, args: List[str], env: Dict[str, str]) -> None:
        """In the forked child: reset inherited state and serve; never returns."""
        code = 1
        try:
            os.setsid()  # its own process group and session, like a spawned worker's process_group(0)
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            for sock in (self.listener, self.conn):
                if sock is not None:
                    sock.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            _reseed()
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
            os.environ.update(env)
            telemetry.reinitialize()
            # The zygote's stdin is the host pipe of the zygote, which closes when the zygote is
            # replaced: a child must not take that for the host's death. It watches the pidfd.
            os.environ.pop("SNAKEPIT_HOST_PIPE", None)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            if self.host_fd is not None:
                os.environ[HOST_PIDFD_ENV] = str(self.host_fd)
            code = server.main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child must never return into the zygote loop
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)


def _reseed() -> None:
    random.seed()
    for name in ("numpy", "torch"):
        module = sys.modules.get(name)
        try:
            if name == "numpy" and module is not None:
                module.random.seed()
            elif name == "torch" and module is not None:
                module.seed()
        except Exception:  # noqa: BLE001 - reseeding is best effort for optional libraries
            pass


def _write_status(status: Dict[str, Any]) -> None:
    path = os.environ.get("SNAKEPIT_READY_FILE")
    if path:
        server.write_ready_file(path, json.dumps(status))


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``python -m snakepit_bridge.zygote``; returns the exit code."""
    server.configure_logging()
    ours, rest = _parse(argv)
    args = server.parse_args(rest)
    if not args.adapter:
        print("snakepit_bridge.zygote: --adapter module.Class is required", file=sys.stderr)
        return 2
    try:
        server.load_adapter_class(args.adapter)
    except server.AdapterLoadError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for name in ours.preload:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported with the module's name
            print(f"preload module '{name}' could not be imported: {type(exc).__name__}: {exc} "
                  "(check the pool's preload list and PYTHONPATH)", file=sys.stderr)
            return 1
    hazards = fork_hazards()
    host_fd = _host_pidfd()
    if host_fd is None and os.environ.get("SNAKEPIT_PARENT_PID"):
        hazards.append("the host cannot be watched through a pidfd (needs Linux 5.3 and Python 3.9)")
    if hazards:
        _write_status({"status": "unsafe", "reason": "; ".join(hazards)})
        return 0
    zygote = _Zygote(ours.control, os.environ.get("SNAKEPIT_AUTH_TOKEN"), host_fd)
    _write_status({"status": "ready", "pid": os.getpid()})
    try:
        return zygote.serve()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
