"""Fixtures: a real worker server in a subprocess, and a fake host bridge server in-process."""

import json
import os
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._proto import snakepit_bridge_pb2_grpc as pb_grpc
from snakepit_bridge._wire import decode_any, encode_any

TOKEN = "test-token-123"
HERE = Path(__file__).parent
SHOWCASE = "snakepit_bridge.adapters.showcase.ShowcaseAdapter"


class Worker:
    def __init__(self, proc, ready_content, target, token, tmp):
        self.proc = proc
        self.ready_content = ready_content
        self.token = token
        self.tmp = tmp
        options = [("grpc.default_authority", "localhost")] if target.startswith("unix:") else []
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.BridgeServiceStub(self.channel)

    @property
    def metadata(self):
        return [("x-snakepit-token", self.token)]

    def stop(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def worker_env(tmp_path, extra_env=None):
    env = dict(os.environ)
    env.update({"SNAKEPIT_READY_FILE": str(tmp_path / "w.ready"), "SNAKEPIT_AUTH_TOKEN": TOKEN})
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env.update(extra_env or {})
    return env


def start_worker(tmp_path, adapter=SHOWCASE, extra_env=None, args=(), listen=None, stdin=None):
    """Start `python -m snakepit_bridge.server` and wait for its ready file.

    `listen` is the argv that says where to listen (default: --address unix:<tmp>/w.sock).
    """
    ready = tmp_path / "w.ready"
    if listen is None:
        listen = ["--address", f"unix:{tmp_path / 'w.sock'}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakepit_bridge.server", "--adapter", adapter, *listen, *args],
        env=worker_env(tmp_path, extra_env),
        stdin=stdin,
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
    content = ready.read_text()
    assert not Path(str(ready) + ".tmp").exists()
    address = content.splitlines()[0]  # a second line may name the fast socket
    if address.startswith("unix:"):
        target = address
    elif address.startswith("tcp:"):
        target = address[4:]
    else:
        target = f"127.0.0.1:{int(content)}"
    return Worker(proc, content, target, TOKEN, tmp_path)


@pytest.fixture
def worker(tmp_path):
    w = start_worker(tmp_path)
    yield w
    w.stop()


class FakeHost(pb_grpc.BridgeServiceServicer):
    """The host side of the bridge, as far as workers use it; requires the token."""

    def __init__(self):
        self.registrations = []
        self.calls = []
        self.heartbeats = 0

    def _check(self, context):
        if dict(context.invocation_metadata()).get("x-snakepit-token") != TOKEN:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong x-snakepit-token")

    def RegisterTools(self, request, context):
        self._check(context)
        self.registrations.append(request)
        return pb.RegisterToolsResponse(success=True, tool_ids={t.name: f"{request.worker_id}:{t.name}" for t in request.tools})

    def Heartbeat(self, request, context):
        self._check(context)
        self.heartbeats += 1
        resp = pb.HeartbeatResponse(session_valid=True)
        resp.server_time.GetCurrentTime()
        return resp

    def GetExposedElixirTools(self, request, context):
        self._check(context)
        return pb.GetExposedElixirToolsResponse(tools=[pb.ToolSpec(name="double"), pb.ToolSpec(name="explode")])

    def ExecuteElixirTool(self, request, context):
        self._check(context)
        args = {k: decode_any(v) for k, v in request.parameters.items()}
        self.calls.append((request.session_id, request.tool_name, args))
        if request.tool_name == "double":
            return pb.ExecuteElixirToolResponse(success=True, result=encode_any(args["x"] * 2))
        if request.tool_name == "blob":
            return pb.ExecuteElixirToolResponse(success=True, binary_result=b"\x00\x01")
        return pb.ExecuteElixirToolResponse(
            success=False, error_message=json.dumps({"type": "HostError", "message": f"no tool {request.tool_name}"})
        )


@pytest.fixture
def fake_host(tmp_path):
    host = FakeHost()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_BridgeServiceServicer_to_server(host, server)
    host.address = f"unix:{tmp_path / 'host.sock'}"
    server.add_insecure_port(host.address)
    server.start()
    yield host
    server.stop(0)
