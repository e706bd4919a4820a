"""The ``fast`` transport: the bridge's tool-call messages as length-prefixed frames on a Unix socket.

A frame is ``length: u32 BE`` (bytes that follow), ``request id: u64 BE``, ``kind: u8`` and a
body; the Rust side (``snakepit-worker/src/transport/codec.rs``) speaks the same format. The
host's first frame on a connection carries the run token; nothing else is read before it was
accepted. Calls carry ``timeout_ms: u32 BE`` (0 = none) and an ``ExecuteToolRequest``; answers
are an ``ExecuteToolResponse``, ``ToolChunk`` frames (the one with ``is_final`` ends a stream), or
an error frame (``u32 BE`` gRPC status code and a UTF-8 message, the JSON error object where
gRPC would send one). A stream may run ``STREAM_WINDOW`` chunks ahead of the host's credit.

The server runs its own event loop on a dedicated thread. On the process profile
(``inline=True``) a sync tool runs right there, with no hand-off to another thread; async tools
run on the worker's main loop, where ``initialize()`` ran. Heartbeat, health, telemetry and the
host bridge stay on gRPC.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import os
import struct
import threading
import time
from typing import Any, AsyncGenerator, AsyncIterator, Coroutine, Deque, Dict, List, Optional, Set, Tuple, TypeVar, Union, cast

import grpc
from google.protobuf.message import DecodeError

from ._context import CancelFlag
from ._dispatch import Dispatcher, ToolCallError
from ._proto import snakepit_bridge_pb2 as pb

log = logging.getLogger("snakepit_bridge.fast")

T = TypeVar("T")

# Frame kinds (host -> worker, then worker -> host).
HELLO, CALL, STREAM, CANCEL, CREDIT = 0x01, 0x02, 0x03, 0x04, 0x05
HELLO_OK, RESPONSE, CHUNK, ERROR = 0x81, 0x82, 0x83, 0x84

HEADER = struct.Struct(">IQB")  # length, request id, kind
HEADER_LEN = 9  # request id and kind: what the length counts besides the body
FRAME_SLACK = 64  # room above max_message_bytes for the header and a call's timeout prefix
STREAM_WINDOW = 16
DEFAULT_MAX_MESSAGE_BYTES = 256 << 20

_STATUS = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "internal": grpc.StatusCode.INTERNAL,
}


def frame(request_id: int, kind: int, body: bytes = b"") -> bytes:
    """One encoded frame."""
    return HEADER.pack(HEADER_LEN + len(body), request_id, kind) + body


def error_body(code: grpc.StatusCode, message: str) -> bytes:
    """The body of an error frame: the gRPC status code and the message."""
    return struct.pack(">I", code.value[0]) + message.encode()


class FastServer:
    """Serves tool calls of one :class:`Dispatcher` on a Unix socket, on its own thread."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        token: Optional[str],
        path: str,
        inline: bool,
        home_loop: asyncio.AbstractEventLoop,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.dispatcher = dispatcher
        self.token = (token or "").encode()
        self.path = path
        self.inline = inline
        self.home_loop = home_loop
        self.max_message_bytes = max_message_bytes
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._connections: Set[FastConnection] = set()
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Event()
        self._stopped: Optional[asyncio.Event] = None
        self._error: Optional[BaseException] = None
        # The process profile runs one call at a time, in order of arrival: calls the host
        # pipelined (pipeline_depth > 1) wait here while one runs as a task.
        self.running = False
        # (connection, request id, frame kind, request, deadline, cancel flag) of each waiting call.
        self.backlog: Deque[Tuple[FastConnection, int, int, pb.ExecuteToolRequest, Optional[float], CancelFlag]] = (
            collections.deque()
        )

    def call_done(self) -> None:
        """A call of the process profile ended: start the calls that waited behind it."""
        self.running = False
        backlog = self.backlog
        while backlog and not self.running:
            conn, request_id, kind, request, deadline, cancelled = backlog.popleft()
            conn.cancels.pop(request_id, None)
            if not conn.closed and not cancelled.is_set():
                conn._start(request_id, kind, request, deadline, cancelled)

    # -- lifecycle (called from the main thread) -------------------------------------------------
    def start(self) -> None:
        """Bind the socket (mode 0600) and start serving; raises OSError when binding fails."""
        # Named like the tool threads: a sync tool running past the grace period on it makes
        # the server exit without waiting for it (see server.main).
        self._thread = threading.Thread(target=self._run, name="snakepit-tool-fast", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    async def stop(self, grace_s: float) -> None:
        """Stop accepting, give running calls up to ``grace_s`` seconds, then close everything."""
        loop, stopped = self.loop, self._stopped
        if loop is None or stopped is None or self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._drain(grace_s), loop)
        except RuntimeError:  # the loop already ended
            return
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, grace_s + 2.0)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            if os.path.exists(self.path):
                os.unlink(self.path)
            self._server = await asyncio.get_running_loop().create_unix_server(
                lambda: FastConnection(self), self.path
            )
            os.chmod(self.path, 0o600)
        except OSError as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self._stopped.wait()

    async def _drain(self, grace_s: float) -> None:
        assert self._server is not None and self._stopped is not None
        self._server.close()
        give_up = time.monotonic() + grace_s
        while any(c.tasks for c in self._connections) and time.monotonic() < give_up:
            await asyncio.sleep(0.01)
        running = [t for c in self._connections for t in c.tasks.values()]
        for conn in list(self._connections):
            conn.close()
        if running:  # let cancelled calls close their generators
            await asyncio.wait(running, timeout=0.5)
        self._stopped.set()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class _Credit:
    """Chunks a stream may still send before the host grants more."""

    def __init__(self, initial: int) -> None:
        self.available = initial
        self.granted = asyncio.Event()

    def add(self, n: int) -> None:
        self.available += n
        self.granted.set()

    async def take(self) -> None:
        while self.available <= 0:
            self.granted.clear()
            await self.granted.wait()
        self.available -= 1


#: Bytes one socket read may bring (asyncio's own default); the buffer is allocated once per connection.
READ_CHUNK = 256 * 1024


class FastConnection(asyncio.BufferedProtocol):
    """One host connection: token first, then any number of concurrent calls by request id."""

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.dispatcher = server.dispatcher
        self.max_len = server.max_message_bytes + FRAME_SLACK
        self.buf = bytearray()
        # Reads land here (a buffered protocol): no fresh 256 KiB object per read.
        self._chunk = memoryview(bytearray(READ_CHUNK))
        self.transport: Optional[asyncio.Transport] = None
        self.authenticated = False
        self.closed = False
        self.tasks: Dict[int, asyncio.Task[None]] = {}
        self.cancels: Dict[int, CancelFlag] = {}
        self.credits: Dict[int, _Credit] = {}
        self.writable = asyncio.Event()
        self.writable.set()
        # Frames to send, written in one go at the end of the loop iteration that made them.
        self.out: List[bytes] = []
        self.flush_scheduled = False

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A unix server's connections have read-write transports.
        self.transport = cast(asyncio.Transport, transport)
        self.server._connections.add(self)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        self.server._connections.discard(self)
        for request_id in list(self.tasks):
            self._cancel(request_id)
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._chunk

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._chunk[:nbytes])

    def data_received(self, data: Union[bytes, memoryview]) -> None:
        buf = self.buf
        buf += data
        frames = []
        while not self.closed and len(buf) >= 4:
            length = int.from_bytes(buf[:4], "big")
            if length < HEADER_LEN:
                return self._protocol_error(f"frame of {length} bytes is shorter than its {HEADER_LEN}-byte header")
            if length > self.max_len:
                return self._protocol_error(
                    f"frame of {length} bytes exceeds max_message_bytes ({self.server.max_message_bytes} bytes)"
                )
            if len(buf) < 4 + length:
                return
            _, request_id, kind = HEADER.unpack_from(buf)
            body = bytes(buf[4 + HEADER_LEN : 4 + length])
            del buf[: 4 + length]
            frames.append((request_id, kind, body))
        if len(frames) == 1:
            self._frame(*frames[0])
        elif frames:
            # A sync call runs inside this handler, so frames queue up behind it; a call whose
            # cancel came in the same read was given up before it started: it never runs.
            dropped = {rid for rid, kind, _ in frames if kind == CANCEL}
            for request_id, kind, body in frames:
                if self.closed:
                    break
                if dropped and kind in (CALL, STREAM) and request_id in dropped:
                    continue
                self._frame(request_id, kind, body)
        self._flush()

    # -- frames --------------------------------------------------------------------------------
    def _frame(self, request_id: int, kind: int, body: bytes) -> None:
        if not self.authenticated:
            if kind == HELLO and request_id == 0 and hmac.compare_digest(body, self.server.token):
                self.authenticated = True
                self._send(0, HELLO_OK)
                return
            log.warning("fast connection without the run token: refused")
            self._send(0, ERROR, error_body(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong run token"))
            return self.close()
        if kind in (CALL, STREAM):
            if len(body) < 4:
                return self._protocol_error(f"call frame of {len(body)} bytes has no timeout")
            try:
                request = pb.ExecuteToolRequest.FromString(body[4:])
            except DecodeError as exc:
                return self._protocol_error(f"undecodable ExecuteToolRequest: {exc}")
            timeout_ms = int.from_bytes(body[:4], "big")
            deadline = time.monotonic() + timeout_ms / 1000.0 if timeout_ms else None
            cancelled = CancelFlag()
            server = self.server
            if server.inline and (server.running or server.backlog):
                # Pipelined behind a running call (a cancel before it starts drops it).
                self.cancels[request_id] = cancelled
                server.backlog.append((self, request_id, kind, request, deadline, cancelled))
                return
            self._start(request_id, kind, request, deadline, cancelled)
        elif kind == CANCEL:
            self._cancel(request_id)
        elif kind == CREDIT:
            credit = self.credits.get(request_id)
            if credit is not None and len(body) >= 4:
                credit.add(int.from_bytes(body[:4], "big"))
        else:
            self._protocol_error(f"unknown frame kind {kind:#04x}")

    def _start(
        self, request_id: int, kind: int, request: pb.ExecuteToolRequest, deadline: Optional[float], cancelled: CancelFlag
    ) -> None:
        if kind == CALL and self._eager(request):
            return self._unary_now(request_id, request, deadline, cancelled)
        self.cancels[request_id] = cancelled
        run = self._unary if kind == CALL else self._stream
        self.server.running = self.server.inline
        self.tasks[request_id] = asyncio.get_running_loop().create_task(
            run(request_id, request, deadline, cancelled)
        )

    def _ended(self, request_id: int) -> None:
        """A call that ran as a task is over: forget it, and let the next pipelined one start."""
        self.tasks.pop(request_id, None)
        self.cancels.pop(request_id, None)
        if self.server.inline:
            self.server.call_done()

    def _cancel(self, request_id: int) -> None:
        cancelled = self.cancels.get(request_id)
        if cancelled is not None:
            cancelled.set()
        task = self.tasks.get(request_id)
        if task is not None:
            task.cancel()

    def _send(self, request_id: int, kind: int, body: bytes = b"") -> None:
        if not self.closed and self.transport is not None:
            self.out.append(frame(request_id, kind, body))
            if not self.flush_scheduled:
                self.flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write the frames made since the last flush, in order, with one write."""
        self.flush_scheduled = False
        out = self.out
        if not out or self.transport is None or self.transport.is_closing():
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.transport.write(data)

    def _protocol_error(self, message: str) -> None:
        log.error("closing a fast connection: %s", message)
        self.close()

    def close(self) -> None:
        """Close the connection (after the frames already made); its running calls are cancelled."""
        if not self.closed:
            self._flush()
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def _too_large(self, request_id: int, what: str, size: int) -> bool:
        limit = self.server.max_message_bytes
        if size <= limit:
            return False
        message = (
            f"the {what} is {size} bytes, above max_message_bytes ({limit} bytes) of the fast transport; "
            "return less per call (stream it in chunks) or raise max_message_bytes"
        )
        log.error("%s", message)
        self._send(request_id, ERROR, error_body(grpc.StatusCode.RESOURCE_EXHAUSTED, message))
        return True

    # -- calls ---------------------------------------------------------------------------------
    def _runs_at_home(self, request: pb.ExecuteToolRequest) -> bool:
        """Async tools (an async ``execute_tool`` too) run on the worker's main loop, like on gRPC."""
        d = self.dispatcher
        tool = d.execute_spec(request.tool_name) if d._execute_tool else d.tools.get(request.tool_name)
        return tool is not None and d.plan(tool).runs_at_home

    def _eager(self, request: pb.ExecuteToolRequest) -> bool:
        """Whether a call runs to its end inside the frame handler: on the process profile a
        sync, non-generator tool never waits for the loop, so it needs no task of its own."""
        if not self.server.inline:
            return False
        d = self.dispatcher
        tool = d.execute_spec(request.tool_name) if d._execute_tool else d.tools.get(request.tool_name)
        if tool is None:
            return True  # answered at once with the unknown-tool error
        plan = d.plan(tool)
        return not (plan.runs_at_home or plan.is_generator)

    def _unary_now(
        self, request_id: int, request: pb.ExecuteToolRequest, deadline: Optional[float], cancelled: CancelFlag
    ) -> None:
        """Run an eager call: drive the dispatcher's coroutine by hand; should it wait after
        all (a sync tool that returned an awaitable), a task finishes it."""
        call = self.dispatcher.execute(request, deadline, inline=True, cancelled=cancelled)
        try:
            waiting = call.send(None)
        except StopIteration as done:
            self._answer(request_id, request, done.value)
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not end the connection (data_received)
            log.exception("fast call %d of '%s' failed outside the tool", request_id, request.tool_name)
            message = f"the worker failed to run call '{request.tool_name}': {type(exc).__name__}: {exc}"
            self._send(request_id, ERROR, error_body(grpc.StatusCode.INTERNAL, message))
            return
        self.cancels[request_id] = cancelled
        self.server.running = True
        self.tasks[request_id] = asyncio.get_running_loop().create_task(
            self._finish(request_id, request, call, waiting, cancelled)
        )

    async def _finish(
        self,
        request_id: int,
        request: pb.ExecuteToolRequest,
        call: Coroutine[Any, Any, pb.ExecuteToolResponse],
        waiting: Any,
        cancelled: CancelFlag,
    ) -> None:
        """Go on driving a started call the way a task would, then answer it."""
        try:
            while True:
                if waiting is not None:
                    await asyncio.wait([waiting])
                try:
                    waiting = call.send(None)
                except StopIteration as done:
                    self._answer(request_id, request, done.value)
                    return
        except asyncio.CancelledError:
            cancelled.set()
            call.close()
        finally:
            self._ended(request_id)

    def _answer(self, request_id: int, request: pb.ExecuteToolRequest, response: pb.ExecuteToolResponse) -> None:
        data = response.SerializeToString()
        if not self._too_large(request_id, f"response of call '{request.tool_name}'", len(data)):
            self._send(request_id, RESPONSE, data)

    async def _unary(
        self, request_id: int, request: pb.ExecuteToolRequest, deadline: Optional[float], cancelled: CancelFlag
    ) -> None:
        try:
            call = self.dispatcher.execute(request, deadline, inline=self.server.inline, cancelled=cancelled)
            if self._runs_at_home(request):
                response = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self.server.home_loop))
            else:
                response = await call
            self._answer(request_id, request, response)
        except asyncio.CancelledError:
            cancelled.set()  # the host forgot this request; nothing to answer
        finally:
            self._ended(request_id)

    async def _stream(
        self, request_id: int, request: pb.ExecuteToolRequest, deadline: Optional[float], cancelled: CancelFlag
    ) -> None:
        credit = _Credit(STREAM_WINDOW)
        self.credits[request_id] = credit
        chunks = self.dispatcher.stream(request, deadline, inline=self.server.inline, cancelled=cancelled)
        at_home = self._runs_at_home(request)
        try:
            while True:
                try:
                    if at_home:
                        step = asyncio.run_coroutine_threadsafe(_next(chunks), self.server.home_loop)
                        chunk = await asyncio.wrap_future(step)
                    else:
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
                await credit.take()
                await self.writable.wait()
                data = chunk.SerializeToString()
                if self._too_large(request_id, f"chunk {chunk.chunk_id} of call '{request.tool_name}'", len(data)):
                    return
                self._send(request_id, CHUNK, data)
                if chunk.is_final:
                    return
                if self.server.inline:
                    await asyncio.sleep(0)  # read frames (a cancel) between a sync generator's items
        except ToolCallError as exc:
            self._send(request_id, ERROR, error_body(_STATUS[exc.kind], json.dumps(exc.payload)))
        except asyncio.CancelledError:
            cancelled.set()
        finally:
            self._ended(request_id)
            self.credits.pop(request_id, None)
            await self._close_stream(chunks, at_home)

    async def _close_stream(self, chunks: AsyncGenerator[pb.ToolChunk, None], at_home: bool) -> None:
        """Close the dispatcher's stream (and so the tool's generator) where it runs."""
        try:
            if at_home:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_aclose(chunks), self.server.home_loop))
            else:
                await chunks.aclose()
        except Exception:  # noqa: BLE001 - a generator failing in its finally is logged, not raised
            log.exception("closing the stream of a fast call failed")


async def _next(chunks: AsyncIterator[T]) -> T:
    return await chunks.__anext__()


async def _aclose(chunks: AsyncGenerator[Any, None]) -> None:
    await chunks.aclose()


def fast_address() -> Optional[str]:
    """The socket path the host asked for in ``SNAKEPIT_FAST_ADDRESS`` (``unix:/path``), if any."""
    raw = os.environ.get("SNAKEPIT_FAST_ADDRESS") or ""
    return raw[5:] if raw.startswith("unix:") else None


def max_message_bytes() -> int:
    """``SNAKEPIT_FAST_MAX_MESSAGE_BYTES`` (default 256 MiB)."""
    raw = os.environ.get("SNAKEPIT_FAST_MAX_MESSAGE_BYTES") or ""
    return int(raw) if raw.isdigit() else DEFAULT_MAX_MESSAGE_BYTES
