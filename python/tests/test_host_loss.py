"""A worker whose host is gone exits at once and takes its process group (its tools' children) along."""

import os
import subprocess
import time

from conftest import start_worker
from test_server import call
from snakepit_bridge._wire import decode_any


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids, limit=10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.005)
    return not any(_alive(p) for p in pids)


def test_worker_exits_when_its_parent_is_not_the_host(tmp_path):
    w = start_worker(tmp_path, extra_env={"SNAKEPIT_PARENT_PID": "1"})
    # Not a group leader here (started by hand), so only the worker itself exits, with 1.
    assert w.proc.wait(10) == 1


def test_closed_host_pipe_kills_the_worker_and_its_group(tmp_path):
    w = start_worker(
        tmp_path,
        adapter="fault_adapter.FaultAdapter",
        extra_env={"SNAKEPIT_HOST_PIPE": "stdin", "SNAKEPIT_PROCESS_GROUP": "1"},
        stdin=subprocess.PIPE,
    )
    sleeper = decode_any(call(w, "spawn_sleeper").result)
    assert _alive(sleeper)
    assert os.getpgid(sleeper) == w.proc.pid, "the tool's child is in the worker's group"
    w.proc.stdin.close()  # what the kernel does when the host dies
    assert _wait_gone([w.proc.pid, sleeper]), "the worker or its child outlived the host pipe"
    assert w.proc.wait(10) != 0


def test_worker_without_the_pipe_flag_ignores_stdin(tmp_path):
    w = start_worker(tmp_path, stdin=subprocess.PIPE)
    w.proc.stdin.close()
    time.sleep(0.3)
    assert w.proc.poll() is None, "a worker not told about the host pipe exited on stdin EOF"
    w.proc.terminate()
    assert w.proc.wait(10) == 0
