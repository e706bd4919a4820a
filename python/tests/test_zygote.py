"""The zygote: control socket authentication, forked workers serving, exit reports, fork hazards."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest

from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._proto import snakepit_bridge_pb2_grpc as pb_grpc
from snakepit_bridge._wire import decode_any
from snakepit_bridge.zygote import _start_time, fork_hazards

from conftest import SHOWCASE, TOKEN, worker_env


#: Pids of children forked in the current test; the zygote fixture kills any still alive.
FORKED = []


class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.settimeout(30)
        self.buffer = b""

    def send(self, message):
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self):
        while b"\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        message = json.loads(line)
        if message.get("ok") and "start_time" in message:
            FORKED.append((message["pid"], message["start_time"]))
        return message


def wait_for(path, proc, seconds=30):
    deadline = time.time() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"exited: {proc.stderr.read().decode()}")
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.01)
    return path.read_text()


PROBE = "zygote_probe_adapter.ProbeAdapter"


@pytest.fixture
def zygote(tmp_path):
    ready = tmp_path / "z.ready"
    env = worker_env(tmp_path, {"SNAKEPIT_READY_FILE": str(ready)})
    control = tmp_path / "z.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakepit_bridge.zygote", "--control", str(control), "--adapter", PROBE],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    status = json.loads(wait_for(ready, proc))
    assert status == {"status": "ready", "pid": proc.pid}
    yield proc, control
    for pid, start_time in FORKED:  # a failed test must not leave its forked workers behind
        try:
            if _start_time(pid) == start_time:  # still that child, not a reused pid
                os.kill(pid, signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            pass
    FORKED.clear()
    proc.kill()
    proc.wait()


def test_control_socket_refuses_a_wrong_token(zygote):
    proc, path = zygote
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    c = Control(path)
    c.send({"op": "hello", "token": "not-the-token"})
    assert c.receive() == {"ok": False, "error": "unauthenticated"}
    assert c.receive() is None  # closed
    c = Control(path)
    c.send({"op": "fork", "id": 1, "args": [], "env": {}})
    assert c.receive()["ok"] is False


def test_forked_worker_serves_and_its_exit_is_reported(zygote, tmp_path):
    proc, path = zygote
    c = Control(path)
    c.send({"op": "hello", "token": TOKEN})
    assert c.receive() == {"ok": True, "pid": proc.pid}
    sock, ready = tmp_path / "w.sock", tmp_path / "w.ready"
    c.send({"op": "fork", "id": 7, "args": ["--adapter", PROBE, "--address", f"unix:{sock}", "--worker-id", "w1"],
            "env": {"SNAKEPIT_READY_FILE": str(ready), "SNAKEPIT_WORKER_MARK": "forked"}})
    reply = c.receive()
    assert reply["id"] == 7 and reply["ok"] is True and reply["pid"] != proc.pid and reply["start_time"] > 0
    child = reply["pid"]
    assert wait_for(ready, proc) == f"unix:{sock}"
    assert os.getpgid(child) == child, "the child leads its own process group"
    channel = grpc.insecure_channel(f"unix:{sock}", options=[("grpc.default_authority", "localhost")])
    stub = pb_grpc.BridgeServiceStub(channel)
    metadata = [("x-snakepit-token", TOKEN)]
    assert stub.Ping(pb.PingRequest(message="hi"), metadata=metadata, timeout=10).message
    state = decode_any(stub.ExecuteTool(pb.ExecuteToolRequest(tool_name="inherited"), metadata=metadata, timeout=10).result)
    channel.close()
    # Signals and log handlers were reset, the environment applied, a group of its own.
    assert state["sigchld_default"] and state["leads_group"]
    assert state["root_handlers"] == 1  # the server's own, not the zygote's as well
    assert state["mark"] == "forked"
    os.kill(child, signal.SIGTERM)
    assert c.receive() == {"exit": child, "status": "exit status 0", "code": 0}


def test_each_child_draws_its_own_random_numbers(zygote, tmp_path):
    proc, path = zygote
    c = Control(path)
    c.send({"op": "hello", "token": TOKEN})
    c.receive()
    draws = []
    for i in range(2):
        sock, ready = tmp_path / f"r{i}.sock", tmp_path / f"r{i}.ready"
        c.send({"op": "fork", "id": i, "args": ["--adapter", PROBE, "--address", f"unix:{sock}"],
                "env": {"SNAKEPIT_READY_FILE": str(ready)}})
        child = c.receive()["pid"]
        wait_for(ready, proc)
        channel = grpc.insecure_channel(f"unix:{sock}", options=[("grpc.default_authority", "localhost")])
        stub = pb_grpc.BridgeServiceStub(channel)
        result = stub.ExecuteTool(pb.ExecuteToolRequest(tool_name="inherited"), metadata=[("x-snakepit-token", TOKEN)], timeout=10)
        draws.append(decode_any(result.result)["draw"])
        channel.close()
        os.kill(child, signal.SIGKILL)
        assert c.receive() == {"exit": child, "status": "killed by signal 9 (SIGKILL)", "signal": 9}
    assert draws[0] != draws[1]


def test_fork_hazards_name_a_running_thread():
    assert not any("fork-hazard-probe" in r for r in fork_hazards())
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="fork-hazard-probe")
    t.start()
    try:
        assert any("fork-hazard-probe" in r for r in fork_hazards())
    finally:
        stop.set()
        t.join()


def test_adapter_starting_a_thread_at_import_is_reported_unsafe(tmp_path):
    (tmp_path / "threaded_at_import.py").write_text(
        "import threading\nthreading.Thread(target=threading.Event().wait, name='loader', daemon=True).start()\n"
        "from snakepit_bridge.adapters.showcase import ShowcaseAdapter as Adapter\n"
    )
    ready = tmp_path / "z.ready"
    env = worker_env(tmp_path, {"SNAKEPIT_READY_FILE": str(ready)})
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    done = subprocess.run(
        [sys.executable, "-m", "snakepit_bridge.zygote", "--control", str(tmp_path / "z.sock"),
         "--adapter", "threaded_at_import.Adapter"],
        env=env, capture_output=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(ready.read_text())
    assert status["status"] == "unsafe" and "loader" in status["reason"]


def test_import_failure_exits_1_with_the_adapters_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "snakepit_bridge.zygote", "--control", str(tmp_path / "z.sock"),
         "--adapter", "no_such_pkg.Adapter"],
        env=worker_env(tmp_path, {"SNAKEPIT_READY_FILE": str(tmp_path / "z.ready")}), capture_output=True, timeout=60,
    )
    assert done.returncode == 1
    assert "'no_such_pkg.Adapter' could not be imported: ModuleNotFoundError" in done.stderr.decode()
    assert not (tmp_path / "z.ready").exists()
