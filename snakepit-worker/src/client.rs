//! The client of one worker, as a `tower::Service<ToolCall>` for unary calls plus streaming.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use hyper_util::rt::TokioIo;
use snakepit_core::config::TransportKind;
use snakepit_core::{ChunkStream, Error, Payload, SessionId, ToolCall, WorkerId};
use snakepit_proto::pb;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::shm::ZeroCopy;
use crate::transport::{CallMeta, GrpcTransport, Transport};
use crate::wire;

/// Where a worker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerAddress {
    /// A Unix domain socket path (the default).
    Unix(std::path::PathBuf),
    /// A TCP `host:port` (only when configured).
    Tcp(String),
}

impl WorkerAddress {
    /// Parses what a worker wrote to its ready file: `unix:/path`, `tcp:host:port`, or a bare port.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            return Some(Self::Unix(path.into()));
        }
        if let Some(addr) = text.strip_prefix("tcp:") {
            return Some(Self::Tcp(addr.to_owned()));
        }
        text.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .map(|p| Self::Tcp(format!("127.0.0.1:{p}")))
    }
}

/// Connects a channel to a worker.
pub(crate) async fn connect(addr: &WorkerAddress) -> Result<Channel, tonic::transport::Error> {
    match addr {
        WorkerAddress::Tcp(hostport) => {
            Endpoint::from_shared(format!("http://{hostport}"))?
                .tcp_nodelay(true)
                .connect()
                .await
        }
        WorkerAddress::Unix(path) => unix_channel(path.clone()).await,
    }
}

/// Connects a gRPC channel over the Unix domain socket at `path`.
///
/// The worker and the host bridge listen on such sockets; this is also how a test or a tool
/// talks to either directly (remember the run token, `x-snakepit-token`, on every call).
pub async fn unix_channel(path: PathBuf) -> Result<Channel, tonic::transport::Error> {
    // The URI is ignored by the connector; h2 only needs a valid authority.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
}

/// Tells a client whether its worker process has died (to report crashes as crashes).
pub(crate) trait ExitProbe: Send + Sync + std::fmt::Debug {
    /// Waits briefly for the process to end and describes how, or returns `None` if it lives.
    fn crashed(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>>;
}

/// The client of one worker: cheap to clone, a `tower::Service` for unary calls.
///
/// Tool calls go over the pool's transport (`fast` or `grpc`); `Ping` (heartbeat, readiness)
/// always uses gRPC. Whichever transport carried a call, its failures become the same errors.
#[derive(Clone, Debug)]
pub struct WorkerClient {
    worker: WorkerId,
    calls: Arc<dyn Transport>,
    control: GrpcTransport,
    probe: Arc<dyn ExitProbe>,
    zero_copy: Arc<ZeroCopy>,
    /// The session a call without one is sent under (the `snakepit` launch contract).
    default_session: Option<Arc<str>>,
}

impl WorkerClient {
    /// Sends calls that name no session under `session` (original-style servers expect one).
    pub(crate) fn with_default_session(mut self, session: String) -> Self {
        self.default_session = Some(session.into());
        self
    }

    fn prepare(&self, call: &ToolCall, stream: bool) -> (pb::ExecuteToolRequest, CallMeta) {
        let (mut request, meta) = prepare(call, stream);
        if request.session_id.is_empty() {
            if let Some(s) = &self.default_session {
                request.session_id = s.to_string();
            }
        }
        (request, meta)
    }

    pub(crate) fn new(
        worker: WorkerId,
        control: GrpcTransport,
        calls: Option<Arc<dyn Transport>>,
        probe: Arc<dyn ExitProbe>,
        zero_copy: Arc<ZeroCopy>,
    ) -> Self {
        let calls = calls.unwrap_or_else(|| Arc::new(control.clone()));
        Self {
            worker,
            calls,
            control,
            probe,
            zero_copy,
            default_session: None,
        }
    }

    /// Returns the worker's zero-copy state (shared-memory regions in flight).
    pub fn zero_copy(&self) -> &ZeroCopy {
        &self.zero_copy
    }

    /// Returns the worker this client talks to.
    pub fn worker_id(&self) -> &WorkerId {
        &self.worker
    }

    /// Returns the transport that carries this client's tool calls.
    pub fn transport(&self) -> TransportKind {
        self.calls.kind()
    }

    async fn map_status(
        &self,
        tool: &str,
        status: tonic::Status,
        timeout: Option<Duration>,
    ) -> Error {
        if matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::Internal
        ) && wire::reported_error(&status).is_none()
        {
            if let Some(how) = self.probe.crashed().await {
                return Error::WorkerCrash {
                    worker: self.worker.to_string(),
                    message: format!("process ended ({how}) during call '{tool}'"),
                };
            }
        }
        wire::status_to_error(self.worker.as_str(), tool, &status, timeout)
    }

    /// Sends a `Ping` (over gRPC) and returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let started = std::time::Instant::now();
        self.control
            .ping()
            .await
            .map_err(|s| wire::status_to_error(self.worker.as_str(), "Ping", &s, None))?;
        Ok(started.elapsed())
    }

    /// Sends `CleanupSession`: the worker drops the session and runs the adapter's
    /// `cleanup_session` hook. Returns whether the worker knew the session.
    pub async fn cleanup_session(&self, session: &SessionId) -> Result<bool, Error> {
        // Session control rides the gRPC control channel, whichever transport carries calls.
        let resp = self
            .control
            .cleanup_session(session.to_string())
            .await
            .map_err(|s| wire::status_to_error(self.worker.as_str(), "CleanupSession", &s, None))?;
        if !resp.success {
            return Err(Error::worker(
                &self.worker,
                format!("the adapter's cleanup_session failed for session '{session}'"),
            ));
        }
        Ok(resp.resources_cleaned > 0)
    }

    /// Runs one tool call.
    ///
    /// Array arguments above the pool's `zero_copy.threshold_bytes` are written into the
    /// worker's shared-memory arena; their regions are returned when this future completes
    /// or is dropped, whatever the outcome. Array handles in the result become
    /// [`Payload::arrays`].
    pub async fn execute(&self, mut call: ToolCall) -> Result<Payload, Error> {
        let regions = self.zero_copy.place(&mut call)?;
        let (request, meta) = self.prepare(&call, false);
        let timeout = meta.timeout;
        let mut payload = match self.calls.execute(request, meta).await {
            Ok(resp) => wire::payload_of(&call.tool, resp)?,
            Err(status) => return Err(self.map_status(&call.tool, status, timeout).await),
        };
        self.zero_copy.resolve(&mut payload, &regions)?;
        Ok(payload)
    }

    /// Runs a streaming tool; chunks are yielded as the worker sends them.
    ///
    /// Dropping the stream cancels the call: the worker closes the tool's generator. Array
    /// arguments travel as in [`WorkerClient::execute`]; their regions live until the stream is
    /// dropped. Chunks carry bytes or JSON, never shared-memory handles.
    pub async fn execute_stream(&self, mut call: ToolCall) -> Result<ChunkStream, Error> {
        let regions = Arc::new(self.zero_copy.place(&mut call)?);
        let (request, meta) = self.prepare(&call, true);
        let timeout = meta.timeout;
        let stream = match self.calls.execute_stream(request, meta).await {
            Ok(stream) => stream,
            Err(status) => return Err(self.map_status(&call.tool, status, timeout).await),
        };
        let this = self.clone();
        let tool = call.tool.clone();
        let chunks = stream.then(move |item| {
            let this = this.clone();
            let tool = tool.clone();
            let _regions = regions.clone();
            async move {
                match item {
                    Ok(chunk) => Ok(wire::chunk_of(chunk)),
                    Err(status) => Err(this.map_status(&tool, status, timeout).await),
                }
            }
        });
        Ok(Box::pin(chunks))
    }
}

/// The wire request of a call and what travels beside it.
fn prepare(call: &ToolCall, stream: bool) -> (pb::ExecuteToolRequest, CallMeta) {
    let correlation_id = correlation_of(call);
    let request = wire::request_of(call, stream, &correlation_id);
    let meta = CallMeta {
        timeout: call.deadline.or(call.options.timeout),
        correlation_id,
    };
    (request, meta)
}

fn correlation_of(call: &ToolCall) -> String {
    call.options.correlation_id.clone().unwrap_or_else(|| {
        use rand::Rng;
        format!("{:016x}", rand::thread_rng().gen::<u64>())
    })
}

impl tower::Service<ToolCall> for WorkerClient {
    type Response = Payload;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Payload, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both transports multiplex; concurrency per worker is bounded by the pool's scheduler.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.execute(call).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_file_addresses_parse() {
        assert_eq!(
            WorkerAddress::parse("unix:/tmp/x.sock\n"),
            Some(WorkerAddress::Unix("/tmp/x.sock".into()))
        );
        assert_eq!(
            WorkerAddress::parse("tcp:127.0.0.1:5000"),
            Some(WorkerAddress::Tcp("127.0.0.1:5000".into()))
        );
        assert_eq!(
            WorkerAddress::parse("50051"),
            Some(WorkerAddress::Tcp("127.0.0.1:50051".into()))
        );
        assert_eq!(WorkerAddress::parse("0"), None);
        assert_eq!(WorkerAddress::parse("garbage"), None);
    }
}
