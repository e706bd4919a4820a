"""Fixtures: a real worker server in a subprocess, reached over a Unix socket."""

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._proto import snakepit_bridge_pb2_grpc as pb_grpc

TOKEN = "test-token-123"
HERE = Path(__file__).parent


class Worker:
    def __init__(self, proc, address, token, tmp):
        self.proc = proc
        self.address = address
        self.token = token
        self.tmp = tmp
        self.channel = grpc.insecure_channel(address, options=[("grpc.default_authority", "localhost")])
        self.stub = pb_grpc.BridgeServiceStub(self.channel)

    @property
    def metadata(self):
        return [("x-snakepit-token", self.token)]


def start_worker(tmp_path, adapter="snakepit_bridge.adapters.showcase.ShowcaseAdapter", extra_env=None, args=()):
    sock = tmp_path / "w.sock"
    ready = tmp_path / "w.ready"
    env = dict(os.environ)
    env.update({"SNAKEPIT_READY_FILE": str(ready), "SNAKEPIT_AUTH_TOKEN": TOKEN})
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakepit_bridge.server", "--adapter", adapter, "--address", f"unix:{sock}", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {proc.stderr.read().decode()}")
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError("worker not ready in 30 s")
        time.sleep(0.01)
    address = ready.read_text()
    assert address == f"unix:{sock}"
    return Worker(proc, address, TOKEN, tmp_path)


@pytest.fixture
def worker(tmp_path):
    w = start_worker(tmp_path)
    yield w
    w.channel.close()
    if w.proc.poll() is None:
        w.proc.kill()
    w.proc.wait()
