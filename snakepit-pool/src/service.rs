//! The tower services every call goes through, unary and streaming alike:
//!
//! ```text
//! Pool -> deadline -> retry -> checkout (scheduler) -> user layers -> breaker -> attempt timeout -> worker
//! ```
//!
//! The call-level half (deadline, retry) sits above the checkout, so a retry goes back through
//! the scheduler and can land on another worker; each worker has its own service (user layers,
//! breaker, attempt timeout) built once when it starts. The deadline sets the call's limit and
//! the checkout enforces it on the attempt, so one limit applies and the worker whose attempt
//! overran it is the one retired.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use snakepit_core::{ChunkStream, Error, ErrorKind, Payload, ToolCall, WorkerId};
use snakepit_resilience::{DeadlineAware, RetryableRequest};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::factory::WorkerHandle;
use crate::pool::Inner;
use crate::stream::LeasedStream;

/// A worker's service (or the pool's whole stack), boxed: what user layers wrap.
pub type WorkerService = BoxCloneSyncService<WorkerCall, WorkerReply, Error>;

/// Whether a call answers once or streams chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMode {
    /// One request, one reply ([`WorkerReply::Unary`]).
    Unary,
    /// One request, a stream of chunks ([`WorkerReply::Stream`]).
    Stream,
}

/// A call on its way through the pool's services: the tool call plus what the pool tracks.
#[derive(Debug, Clone)]
pub struct WorkerCall {
    /// The tool call.
    pub call: ToolCall,
    /// Unary or streaming.
    pub mode: CallMode,
    /// The limit used when the call asks for none (`stream_timeout_ms` for streams).
    default_timeout: Option<Duration>,
    /// When the call's time runs out (set by the deadline, tightened by attempt timeouts).
    expires_at: Option<Instant>,
    /// The call's overall limit, as the deadline first set it (for error messages).
    limit: Option<Duration>,
    /// The workers earlier attempts of this call ran on (shared by the retry's clones).
    attempted: Arc<Mutex<Vec<WorkerId>>>,
}

impl WorkerCall {
    /// Wraps a unary call.
    pub fn unary(call: ToolCall) -> Self {
        Self::new(call, CallMode::Unary, None)
    }

    /// Wraps a streaming call whose limit is `default_timeout` unless it asks for its own.
    pub fn stream(call: ToolCall, default_timeout: Duration) -> Self {
        Self::new(call, CallMode::Stream, Some(default_timeout))
    }

    fn new(call: ToolCall, mode: CallMode, default_timeout: Option<Duration>) -> Self {
        Self {
            call,
            mode,
            default_timeout,
            expires_at: None,
            limit: None,
            attempted: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Returns the workers earlier attempts of this call ran on, oldest first.
    pub fn attempted(&self) -> Vec<WorkerId> {
        self.attempted.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn record_attempt(&self, id: &WorkerId) {
        if let Ok(mut a) = self.attempted.lock() {
            a.push(id.clone());
        }
    }
}

impl RetryableRequest for WorkerCall {
    fn is_idempotent(&self) -> bool {
        self.call.options.idempotent
    }
}

impl DeadlineAware for WorkerCall {
    fn requested_timeout(&self) -> Option<Duration> {
        self.call.options.timeout.or(self.default_timeout)
    }

    fn deadline(&self) -> Option<Duration> {
        self.expires_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn set_deadline(&mut self, remaining: Duration) {
        let at = Instant::now() + remaining;
        self.limit.get_or_insert(remaining);
        self.expires_at = Some(self.expires_at.map_or(at, |old| old.min(at)));
        self.call.deadline = Some(remaining);
    }
}

/// What a worker answers: a payload, or a stream of chunks.
pub enum WorkerReply {
    /// The reply to a unary call.
    Unary(Payload),
    /// The chunks of a streaming call.
    Stream(ChunkStream),
}

impl fmt::Debug for WorkerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerReply::Unary(p) => f.debug_tuple("Unary").field(p).finish(),
            WorkerReply::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// The innermost service of a worker: the call, sent to the worker's handle.
#[derive(Clone)]
pub(crate) struct HandleService {
    pub(crate) handle: Arc<dyn WorkerHandle>,
}

impl Service<WorkerCall> for HandleService {
    type Response = WorkerReply;
    type Error = Error;
    type Future = BoxFuture<'static, Result<WorkerReply, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: WorkerCall) -> Self::Future {
        let handle = self.handle.clone();
        // The worker sees the time really left, queueing included.
        if let Some(left) = req.deadline() {
            req.call.deadline = Some(left);
        }
        Box::pin(async move {
            match req.mode {
                CallMode::Unary => handle.execute(req.call).await.map(WorkerReply::Unary),
                CallMode::Stream => handle
                    .execute_stream(req.call)
                    .await
                    .map(WorkerReply::Stream),
            }
        })
    }
}

/// Takes a worker from the scheduler for each attempt and runs the attempt on its service.
#[derive(Clone)]
pub(crate) struct Checkout {
    pub(crate) inner: Arc<Inner>,
}

impl Service<WorkerCall> for Checkout {
    type Response = WorkerReply;
    type Error = Error;
    type Future = BoxFuture<'static, Result<WorkerReply, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Back-pressure is the scheduler's bounded queue, answered per call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: WorkerCall) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(attempt(inner, req))
    }
}

/// One attempt: a worker from the scheduler (avoiding those earlier attempts used), the call
/// on its service within the call's time, and what the outcome says about the worker.
async fn attempt(inner: Arc<Inner>, req: WorkerCall) -> Result<WorkerReply, Error> {
    let avoid = req.attempted();
    let lease = inner.clone().checkout(&req.call, &avoid).await?;
    req.record_attempt(&lease.id);
    let tool = req.call.tool.clone();
    let mode = req.mode;
    let expires_at = req.expires_at;
    let limit = req.limit.or(req.requested_timeout());
    let service = lease.worker.service.clone();
    let outcome = match expires_at {
        Some(at) => tokio::time::timeout_at(at, service.oneshot(req)).await,
        None => Ok(service.oneshot(req).await),
    };
    let what = match mode {
        CallMode::Unary => "call",
        CallMode::Stream => "stream",
    };
    match outcome {
        Ok(Ok(WorkerReply::Unary(payload))) => {
            lease.succeeded();
            Ok(WorkerReply::Unary(payload))
        }
        Ok(Ok(WorkerReply::Stream(stream))) => {
            let deadline = expires_at.unwrap_or_else(far_future);
            let limit = limit.unwrap_or(Duration::MAX);
            Ok(WorkerReply::Stream(Box::pin(LeasedStream::new(
                stream,
                lease,
                deadline,
                limit,
                tool,
                inner.clone(),
            ))))
        }
        Ok(Err(e)) => {
            let e = at_call_limit(e, limit);
            lease.worker.record_error(&e);
            // A dead worker leaves scheduling at once, before its monitor sees the exit, so a
            // retry is not handed it again.
            if e.kind() == ErrorKind::WorkerCrash {
                lease.evict();
            }
            Err(e)
        }
        Err(_) => {
            lease.retire_after_timeout();
            let e = Error::timeout(
                format!("{what} '{tool}' on worker {}", lease.id),
                limit.unwrap_or_default(),
            );
            lease.worker.record_error(&e);
            Err(e)
        }
    }
}

/// A worker's timeout names the limit of its attempt (what was left when it was sent, a
/// little less than the call's); the caller set the call's, so the error names that one.
pub(crate) fn at_call_limit(e: Error, limit: Option<Duration>) -> Error {
    match (e, limit) {
        (Error::Timeout { operation, .. }, Some(limit)) if limit != Duration::MAX => {
            Error::timeout(operation, limit)
        }
        (e, _) => e,
    }
}

/// An instant no stream reaches (about thirty years ahead), for streams without a limit.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}
