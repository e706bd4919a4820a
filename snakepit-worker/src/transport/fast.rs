//! The `fast` transport: bridge messages as frames on one multiplexed Unix-socket connection.
//!
//! One connection per worker carries every call at once, each under its own request id. A
//! writer task batches outgoing frames (flushing when nothing else is queued); a reader task
//! routes incoming frames to the waiting call. The token is sent once, as the connection's
//! first frame, and nothing else is read by the worker before it was accepted. Dropping a
//! call's future or stream sends `Cancel`; a stream's chunks are credited `STREAM_WINDOW` at a
//! time, so a slow consumer holds the Python generator back (back-pressure).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use prost::Message;
use snakepit_core::config::TransportKind;
use snakepit_proto::pb;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};
use tonic::Status;

use super::codec::{self, Frame, FrameCodec, FrameKind};
use super::{CallMeta, Transport, TransportFuture, WireChunkStream};

/// Chunks a worker may send ahead of the consumer (the Python side starts with the same credit).
pub(crate) const STREAM_WINDOW: u32 = 16;
/// Call frames queued for the writer before callers wait.
const WRITE_QUEUE: usize = 1024;

/// The `fast` client of one worker: connects on first use and again after a broken connection.
#[derive(Debug)]
pub(crate) struct FastTransport {
    inner: Arc<Endpoint>,
}

/// Where and how to connect, and the current connection.
#[derive(Debug)]
struct Endpoint {
    path: PathBuf,
    token: String,
    max_message_bytes: usize,
    conn: Mutex<Option<Arc<Connection>>>,
}

impl FastTransport {
    /// Opens the first connection (token handshake included) to the worker's socket at `path`.
    pub(crate) async fn connect(
        path: PathBuf,
        token: &str,
        max_message_bytes: usize,
    ) -> Result<Self, Status> {
        let conn = Connection::open(&path, token, max_message_bytes).await?;
        Ok(Self {
            inner: Arc::new(Endpoint {
                path,
                token: token.to_owned(),
                max_message_bytes,
                conn: Mutex::new(Some(conn)),
            }),
        })
    }
}

impl Endpoint {
    async fn connection(&self) -> Result<Arc<Connection>, Status> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let conn = Connection::open(&self.path, &self.token, self.max_message_bytes).await?;
        if let Ok(mut slot) = self.conn.lock() {
            *slot = Some(conn.clone());
        }
        Ok(conn)
    }

    fn current(&self) -> Option<Arc<Connection>> {
        let slot = self.conn.lock().ok()?;
        slot.as_ref()
            .filter(|c| !c.shared.closed.load(Ordering::Acquire))
            .cloned()
    }

    /// Encodes a call frame's body, refusing one above `max_message_bytes`.
    fn body(&self, request: &pb::ExecuteToolRequest, meta: &CallMeta) -> Result<Bytes, Status> {
        let timeout_ms = meta.timeout.map_or(0, |t| {
            u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1)
        });
        let body = codec::call_body(timeout_ms, request);
        if body.len() > self.max_message_bytes {
            return Err(Status::resource_exhausted(format!(
                "the request of call '{}' is {} bytes, above max_message_bytes ({} bytes) of the fast transport; \
                 send less per call or raise max_message_bytes",
                request.tool_name,
                body.len(),
                self.max_message_bytes
            )));
        }
        Ok(body)
    }
}

impl Transport for FastTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Fast
    }

    fn execute(
        &self,
        request: pb::ExecuteToolRequest,
        meta: CallMeta,
    ) -> TransportFuture<pb::ExecuteToolResponse> {
        let endpoint = self.inner.clone();
        Box::pin(async move {
            let body = endpoint.body(&request, &meta)?;
            let tool = request.tool_name;
            let conn = endpoint.connection().await?;
            let (tx, rx) = oneshot::channel();
            let guard = conn
                .start(FrameKind::Call, body, Pending::Unary(tx))
                .await?;
            let outcome = match meta.timeout {
                Some(t) => match tokio::time::timeout(t, rx).await {
                    Ok(outcome) => outcome,
                    Err(_) => return Err(deadline_exceeded(&tool, t)),
                },
                None => rx.await,
            };
            guard.finish();
            outcome.unwrap_or_else(|_| Err(conn.shared.closed_status()))
        })
    }

    fn execute_stream(
        &self,
        request: pb::ExecuteToolRequest,
        meta: CallMeta,
    ) -> TransportFuture<WireChunkStream> {
        let endpoint = self.inner.clone();
        Box::pin(async move {
            let body = endpoint.body(&request, &meta)?;
            let tool = request.tool_name;
            let conn = endpoint.connection().await?;
            let (tx, rx) = mpsc::channel(STREAM_WINDOW as usize + 1);
            let guard = conn
                .start(FrameKind::Stream, body, Pending::Stream(tx))
                .await?;
            let deadline = meta.timeout.map(|t| (Box::pin(tokio::time::sleep(t)), t));
            let stream: WireChunkStream = Box::pin(FastChunkStream {
                rx,
                guard: Some(guard),
                deadline,
                tool,
                consumed: 0,
            });
            Ok(stream)
        })
    }
}

fn deadline_exceeded(tool: &str, timeout: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "call '{tool}' got no answer within {} ms",
        timeout.as_millis()
    ))
}

/// Who waits for a request's frames.
#[derive(Debug)]
enum Pending {
    Unary(oneshot::Sender<Result<pb::ExecuteToolResponse, Status>>),
    Stream(mpsc::Sender<Result<pb::ToolChunk, Status>>),
}

impl Pending {
    fn fail(self, status: Status) {
        match self {
            Pending::Unary(tx) => {
                let _ = tx.send(Err(status));
            }
            Pending::Stream(tx) => {
                let _ = tx.try_send(Err(status));
            }
        }
    }
}

/// State the caller side, the reader and the writer of one connection share.
#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<u64, Pending>>,
    /// Cancel and credit frames: sent from `Drop` and `poll_next`, which cannot wait for room
    /// in the write queue. At most one cancel per call and one credit per stream read.
    control: Mutex<Vec<Frame>>,
    control_ready: Notify,
    closed: AtomicBool,
    close_reason: Mutex<Option<String>>,
}

impl Shared {
    fn push_control(&self, frame: Frame) {
        if let Ok(mut q) = self.control.lock() {
            q.push(frame);
        }
        self.control_ready.notify_one();
    }

    fn take_control(&self) -> Vec<Frame> {
        self.control
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    fn remove(&self, id: u64) -> Option<Pending> {
        self.pending.lock().ok()?.remove(&id)
    }

    fn closed_status(&self) -> Status {
        let reason = self
            .close_reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "closed".into());
        Status::unavailable(format!("fast connection to the worker ended: {reason}"))
    }

    /// Marks the connection closed and fails every waiting call.
    fn close(&self, reason: String) {
        if let Ok(mut r) = self.close_reason.lock() {
            r.get_or_insert(reason);
        }
        self.closed.store(true, Ordering::Release);
        let drained: Vec<Pending> = self
            .pending
            .lock()
            .map(|mut p| p.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        for pending in drained {
            pending.fail(self.closed_status());
        }
    }
}

/// One open connection; its reader and writer tasks end when it is dropped.
#[derive(Debug)]
struct Connection {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Frame>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Connection {
    async fn open(
        path: &std::path::Path,
        token: &str,
        max_message_bytes: usize,
    ) -> Result<Arc<Self>, Status> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            Status::unavailable(format!(
                "cannot connect to the fast socket {}: {e}",
                path.display()
            ))
        })?;
        let (read, write) = stream.into_split();
        let codec = FrameCodec::new(max_message_bytes);
        let mut frames = FramedRead::new(read, codec.clone());
        let mut sink = FramedWrite::new(write, codec);
        let hello = Frame {
            id: 0,
            kind: FrameKind::Hello,
            body: Bytes::copy_from_slice(token.as_bytes()),
        };
        sink.send(hello)
            .await
            .map_err(|e| Status::unavailable(format!("fast handshake failed: {e}")))?;
        match frames.next().await {
            Some(Ok(f)) if f.kind == FrameKind::HelloOk => {}
            Some(Ok(f)) if f.kind == FrameKind::Error => {
                let (code, message) = codec::error_parts(&f.body);
                return Err(Status::new(tonic::Code::from_i32(code), message));
            }
            Some(Ok(f)) => {
                return Err(Status::unavailable(format!(
                    "fast handshake: the worker answered {:?} instead of HelloOk",
                    f.kind
                )))
            }
            Some(Err(e)) => return Err(Status::unavailable(format!("fast handshake failed: {e}"))),
            None => {
                return Err(Status::unavailable(
                    "fast handshake: the worker closed the connection",
                ))
            }
        }
        let shared = Arc::new(Shared::default());
        let (requests, queue) = mpsc::channel(WRITE_QUEUE);
        let reader = tokio::spawn(read_frames(frames, shared.clone()));
        let writer = tokio::spawn(write_frames(sink, queue, shared.clone()));
        Ok(Arc::new(Self {
            shared,
            requests,
            next_id: AtomicU64::new(1),
            reader,
            writer,
        }))
    }

    /// Registers a call and sends its frame; the guard cancels it unless finished.
    async fn start(
        self: &Arc<Self>,
        kind: FrameKind,
        body: Bytes,
        pending: Pending,
    ) -> Result<CallGuard, Status> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(id, pending);
        }
        let guard = CallGuard {
            conn: self.clone(),
            id,
            armed: true,
        };
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(self.shared.closed_status());
        }
        self.requests
            .send(Frame { id, kind, body })
            .await
            .map_err(|_| self.shared.closed_status())?;
        Ok(guard)
    }
}

/// Cancels its call on the worker when dropped before [`CallGuard::finish`].
#[derive(Debug)]
struct CallGuard {
    conn: Arc<Connection>,
    id: u64,
    armed: bool,
}

impl CallGuard {
    /// The call ended on the worker's side: nothing to cancel.
    fn finish(mut self) {
        self.armed = false;
    }

    fn credit(&self, n: u32) {
        self.conn.shared.push_control(Frame {
            id: self.id,
            kind: FrameKind::Credit,
            body: Bytes::copy_from_slice(&n.to_be_bytes()),
        });
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        // Still registered: the worker has not ended the call, so tell it to stop.
        if self.armed && self.conn.shared.remove(self.id).is_some() {
            self.conn
                .shared
                .push_control(Frame::empty(self.id, FrameKind::Cancel));
        }
    }
}

/// The chunks of one streaming call.
struct FastChunkStream {
    rx: mpsc::Receiver<Result<pb::ToolChunk, Status>>,
    guard: Option<CallGuard>,
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    tool: String,
    consumed: u32,
}

impl Stream for FastChunkStream {
    type Item = Result<pb::ToolChunk, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.guard.is_none() {
            return Poll::Ready(None);
        }
        if let Some((sleep, t)) = &mut this.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                let status = deadline_exceeded(&this.tool, *t);
                this.guard = None; // cancels the call on the worker
                return Poll::Ready(Some(Err(status)));
            }
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if chunk.is_final {
                    if let Some(g) = this.guard.take() {
                        g.finish();
                    }
                } else {
                    this.consumed += 1;
                    if this.consumed >= STREAM_WINDOW / 2 {
                        if let Some(g) = &this.guard {
                            g.credit(this.consumed);
                        }
                        this.consumed = 0;
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(status))) => {
                if let Some(g) = this.guard.take() {
                    g.finish();
                }
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(None) => {
                // Ended without its final chunk: the connection went away.
                let status = this.guard.take().map(|g| g.conn.shared.closed_status());
                Poll::Ready(status.map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

async fn read_frames(mut frames: FramedRead<OwnedReadHalf, FrameCodec>, shared: Arc<Shared>) {
    let reason = loop {
        let frame = match frames.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::error!(target: "snakepit::fast", error = %e, "bad frame from the worker; closing the connection");
                break e.to_string();
            }
            None => break "the worker closed the connection".to_owned(),
        };
        if let Err(e) = route(&shared, frame) {
            tracing::error!(target: "snakepit::fast", error = %e, "unexpected frame from the worker; closing the connection");
            break e;
        }
    };
    shared.close(reason);
}

/// Hands one incoming frame to the call waiting for it.
fn route(shared: &Shared, frame: Frame) -> Result<(), String> {
    match frame.kind {
        FrameKind::Response => {
            if let Some(Pending::Unary(tx)) = shared.remove(frame.id) {
                let decoded = pb::ExecuteToolResponse::decode(frame.body)
                    .map_err(|e| Status::internal(format!("undecodable response: {e}")));
                let _ = tx.send(decoded);
            }
        }
        FrameKind::Chunk => {
            let chunk =
                pb::ToolChunk::decode(frame.body).map_err(|e| format!("undecodable chunk: {e}"))?;
            let mut pending = shared.pending.lock().map_err(|_| "poisoned".to_owned())?;
            let Some(Pending::Stream(tx)) = pending.get(&frame.id) else {
                return Ok(()); // cancelled meanwhile
            };
            let is_final = chunk.is_final;
            match tx.try_send(Ok(chunk)) {
                Ok(()) if is_final => {
                    pending.remove(&frame.id);
                }
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    pending.remove(&frame.id);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(format!(
                        "the worker sent more than {STREAM_WINDOW} uncredited chunks on stream {}",
                        frame.id
                    ));
                }
            }
        }
        FrameKind::Error => {
            if let Some(pending) = shared.remove(frame.id) {
                let (code, message) = codec::error_parts(&frame.body);
                pending.fail(Status::new(tonic::Code::from_i32(code), message));
            }
        }
        other => return Err(format!("a worker does not send {other:?} frames")),
    }
    Ok(())
}

async fn write_frames(
    mut sink: FramedWrite<OwnedWriteHalf, FrameCodec>,
    mut queue: mpsc::Receiver<Frame>,
    shared: Arc<Shared>,
) {
    let outcome: Result<(), codec::FrameError> = async {
        loop {
            tokio::select! {
                biased;
                frame = queue.recv() => match frame {
                    Some(frame) => sink.feed(frame).await?,
                    None => return Ok(()),
                },
                () = shared.control_ready.notified() => {}
            }
            // Batch whatever else is ready into the same write.
            while let Ok(frame) = queue.try_recv() {
                sink.feed(frame).await?;
            }
            for frame in shared.take_control() {
                sink.feed(frame).await?;
            }
            sink.flush().await?;
        }
    }
    .await;
    if let Err(e) = outcome {
        tracing::error!(target: "snakepit::fast", error = %e, "writing to the worker failed; closing the connection");
        shared.close(e.to_string());
    }
}
