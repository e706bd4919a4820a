"""The fast transport's server over a real Unix socket: token first, frames, limits, cancellation."""

import json
import socket
import struct
import time

import pytest

from conftest import TOKEN, start_worker
from snakepit_bridge import _fast
from snakepit_bridge._proto import snakepit_bridge_pb2 as pb
from snakepit_bridge._wire import decode_any, encode_any

LIFECYCLE = "lifecycle_adapter.LifecycleAdapter"


class FastClient:
    """A raw client of the fast socket (what the Rust host does, by hand)."""

    def __init__(self, path, token=TOKEN):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(path))
        self.buf = b""
        if token is not None:
            self.send(0, _fast.HELLO, token.encode())
            assert self.recv()[1] == _fast.HELLO_OK

    def send(self, request_id, kind, body=b""):
        self.sock.sendall(_fast.frame(request_id, kind, body))

    def call(self, request_id, tool, stream=False, timeout_ms=0, **params):
        req = pb.ExecuteToolRequest(tool_name=tool, parameters={k: encode_any(v) for k, v in params.items()})
        kind = _fast.STREAM if stream else _fast.CALL
        self.send(request_id, kind, struct.pack(">I", timeout_ms) + req.SerializeToString())

    def _read(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        length, request_id, kind = _fast.HEADER.unpack(self._read(_fast.HEADER.size))
        return request_id, kind, self._read(length - _fast.HEADER_LEN)

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except ConnectionError:
            return True

    def close(self):
        self.sock.close()


@pytest.fixture
def fast_worker(tmp_path):
    w = start_worker(
        tmp_path,
        adapter=LIFECYCLE,
        extra_env={"SNAKEPIT_FAST_ADDRESS": f"unix:{tmp_path / 'w.fast.sock'}", "MARKER_FILE": str(tmp_path / "m")},
    )
    w.fast_path = tmp_path / "w.fast.sock"
    yield w
    w.stop()


def response(body):
    return pb.ExecuteToolResponse.FromString(body)


def test_ready_file_names_the_fast_socket_and_it_is_private(fast_worker):
    assert fast_worker.ready_content.splitlines()[1] == f"fast:unix:{fast_worker.fast_path}"
    assert fast_worker.fast_path.stat().st_mode & 0o777 == 0o600


def test_calls_on_one_connection_are_answered_by_request_id(fast_worker):
    c = FastClient(fast_worker.fast_path)
    c.call(7, "async_add", a=2, b=3)
    c.call(8, "slow", ms=1)
    answers = dict((rid, (kind, body)) for rid, kind, body in (c.recv(), c.recv()))
    assert answers[7][0] == _fast.RESPONSE and decode_any(response(answers[7][1]).result) == 5
    assert decode_any(response(answers[8][1]).result) == "done"
    c.call(9, "nope")
    rid, kind, body = c.recv()
    assert (rid, kind) == (9, _fast.RESPONSE)
    assert json.loads(response(body).error_message)["type"] == "UnknownToolError"
    c.close()


def test_streams_end_with_the_final_chunk_and_failures_are_error_frames(fast_worker):
    c = FastClient(fast_worker.fast_path)
    c.call(1, "countdown", stream=True, n=3)
    chunks = [pb.ToolChunk.FromString(c.recv()[2]) for _ in range(4)]
    assert [ch.data for ch in chunks] == [b"3", b"2", b"1", b""]
    assert chunks[-1].is_final and [ch.chunk_id for ch in chunks][0] == "countdown-1"
    c.call(2, "broken_stream", stream=True)
    assert pb.ToolChunk.FromString(c.recv()[2]).data == b"1"
    rid, kind, body = c.recv()
    assert (rid, kind) == (2, _fast.ERROR)
    code = struct.unpack(">I", body[:4])[0]
    assert code == 13 and json.loads(body[4:])["message"] == "stream broke"
    c.close()


def test_a_connection_without_the_token_gets_no_request_served(fast_worker):
    c = FastClient(fast_worker.fast_path, token=None)
    c.call(1, "big", n=10)  # a call before the token
    rid, kind, body = c.recv()
    assert (rid, kind) == (0, _fast.ERROR)
    assert struct.unpack(">I", body[:4])[0] == 16 and b"token" in body
    assert c.closed()
    wrong = FastClient(fast_worker.fast_path, token=None)
    wrong.send(0, _fast.HELLO, b"not-the-token")
    assert wrong.recv()[1] == _fast.ERROR and wrong.closed()
    # a proper connection is still served
    ok = FastClient(fast_worker.fast_path)
    ok.call(1, "big", n=3)
    assert decode_any(response(ok.recv()[2]).result) == "xxx"


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00\x02ab", b"\xff\xff\xff\xff", _fast.frame(1, 0x77), _fast.frame(1, _fast.CALL, b"\x00\x00\x00\x00\xff\xff")])
def test_bad_frames_close_only_their_connection(fast_worker, garbage):
    bad = FastClient(fast_worker.fast_path)
    bad.sock.sendall(garbage)
    assert bad.closed()
    good = FastClient(fast_worker.fast_path)
    good.call(1, "big", n=2)
    assert decode_any(response(good.recv()[2]).result) == "xx"
    fast_worker.stop()
    assert "closing a fast connection" in fast_worker.proc.stderr.read().decode()


def test_messages_above_the_maximum_are_refused(tmp_path):
    w = start_worker(
        tmp_path,
        adapter=LIFECYCLE,
        extra_env={
            "SNAKEPIT_FAST_ADDRESS": f"unix:{tmp_path / 'w.fast.sock'}",
            "SNAKEPIT_FAST_MAX_MESSAGE_BYTES": "4096",
            "MARKER_FILE": str(tmp_path / "m"),
        },
    )
    try:
        c = FastClient(tmp_path / "w.fast.sock")
        c.call(1, "big", n=3000)
        assert decode_any(response(c.recv()[2]).result) == "x" * 3000
        c.call(2, "big", n=5000)
        rid, kind, body = c.recv()
        assert (rid, kind) == (2, _fast.ERROR)
        assert struct.unpack(">I", body[:4])[0] == 8 and b"max_message_bytes" in body
        c.call(3, "big", n=1)  # the connection still serves
        assert decode_any(response(c.recv()[2]).result) == "x"
        c.call(4, "big", n=1, pad="y" * 5000)  # a request above the maximum closes the connection
        assert c.closed()
    finally:
        w.stop()


def test_cancel_frame_closes_the_generator(tmp_path):
    marker = tmp_path / "closed"
    w = start_worker(
        tmp_path,
        adapter="lifecycle_adapter.GeneratorCloseAdapter",
        extra_env={"SNAKEPIT_FAST_ADDRESS": f"unix:{tmp_path / 'w.fast.sock'}", "MARKER_FILE": str(marker)},
    )
    try:
        c = FastClient(tmp_path / "w.fast.sock")
        c.call(5, "endless", stream=True, delay_ms=20)
        assert json.loads(pb.ToolChunk.FromString(c.recv()[2]).data) == {"i": 1}
        c.send(5, _fast.CANCEL)
        deadline = time.time() + 10
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.02)
        assert marker.read_text() == "closed"
    finally:
        w.stop()


def test_streams_wait_for_credit(tmp_path):
    w = start_worker(
        tmp_path,
        adapter="lifecycle_adapter.GeneratorCloseAdapter",
        extra_env={"SNAKEPIT_FAST_ADDRESS": f"unix:{tmp_path / 'w.fast.sock'}", "MARKER_FILE": str(tmp_path / "m")},
    )
    try:
        c = FastClient(tmp_path / "w.fast.sock")
        c.call(1, "endless", stream=True, delay_ms=1)
        got = [json.loads(pb.ToolChunk.FromString(c.recv()[2]).data)["i"] for _ in range(_fast.STREAM_WINDOW)]
        assert got == list(range(1, _fast.STREAM_WINDOW + 1))
        c.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            c.recv()  # no credit left: the worker waits
        c.sock.settimeout(20)
        c.send(1, _fast.CREDIT, struct.pack(">I", 2))
        assert [json.loads(pb.ToolChunk.FromString(c.recv()[2]).data)["i"] for _ in range(2)] == [17, 18]
    finally:
        w.stop()
