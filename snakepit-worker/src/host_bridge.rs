//! The host side of the bridge: a gRPC server workers call back into (host tools, tool
//! registration, sessions, heartbeats), on a Unix socket in the run's private directory (or on
//! TCP when `grpc_port` asks), token required; optionally also on loopback TCP without a token
//! for original-style workers.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value};
use snakepit_core::config::HostBridgeListen;
use snakepit_core::Error;
use snakepit_proto::pb::{self, BridgeService, BridgeServiceServer};
use snakepit_proto::TOKEN_METADATA_KEY;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

pub use crate::host_sessions::{HostSession, HostSessions};
use crate::run::RunContext;
use crate::wire;

/// What a host tool handler returns: a JSON result, or a [`ToolFailure`] for the caller.
pub type HostToolFuture = Pin<Box<dyn Future<Output = Result<Value, ToolFailure>> + Send>>;

/// How a host tool handler failed: the caller's mistake or the tool's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFailureKind {
    /// The arguments were wrong (missing, of the wrong type, out of range).
    InvalidArguments,
    /// The tool could not do its work.
    Failed,
}

/// The error a host tool handler returns; Python's `HostToolError` carries its text.
///
/// `?` converts a `&str` or `String` into a [`ToolFailureKind::Failed`] failure, so handlers
/// can write `args.get("id").ok_or("id is required")?`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if *.kind == ToolFailureKind::InvalidArguments { "invalid arguments: " } else { "" })]
pub struct ToolFailure {
    /// Whose mistake it was.
    pub kind: ToolFailureKind,
    /// What went wrong, for the caller.
    pub message: String,
}

impl ToolFailure {
    /// The tool could not do its work.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            kind: ToolFailureKind::Failed,
            message: message.into(),
        }
    }

    /// The caller passed wrong arguments.
    pub fn invalid_arguments(message: impl Into<String>) -> Self {
        Self {
            kind: ToolFailureKind::InvalidArguments,
            message: message.into(),
        }
    }
}

impl From<String> for ToolFailure {
    fn from(message: String) -> Self {
        Self::failed(message)
    }
}

impl From<&str> for ToolFailure {
    fn from(message: &str) -> Self {
        Self::failed(message)
    }
}

type Handler = Arc<dyn Fn(HostToolCall) -> HostToolFuture + Send + Sync>;

/// One call of a host tool, as Python made it.
#[derive(Debug, Clone)]
pub struct HostToolCall {
    /// The caller's session.
    pub session_id: String,
    /// Keyword arguments.
    pub args: Map<String, Value>,
    /// Metadata sent with the call.
    pub metadata: HashMap<String, String>,
}

/// A tool the host offers to Python (`register_elixir_tool` in the seeds).
#[derive(Clone)]
pub struct HostTool {
    name: String,
    description: String,
    parameters: Vec<(String, String, bool)>,
    exposed_to_python: bool,
    handler: Handler,
}

impl std::fmt::Debug for HostTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTool")
            .field("name", &self.name)
            .field("exposed_to_python", &self.exposed_to_python)
            .finish()
    }
}

impl HostTool {
    /// Builds a tool exposed to Python; `handler` gets the call and returns the result.
    pub fn new<F, Fut>(name: impl Into<String>, description: impl Into<String>, handler: F) -> Self
    where
        F: Fn(HostToolCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolFailure>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            parameters: Vec::new(),
            exposed_to_python: true,
            handler: Arc::new(move |call| Box::pin(handler(call))),
        }
    }

    /// Declares a parameter (name, type such as `integer`, required) for the tool's spec.
    pub fn with_parameter(
        mut self,
        name: impl Into<String>,
        kind: impl Into<String>,
        required: bool,
    ) -> Self {
        self.parameters.push((name.into(), kind.into(), required));
        self
    }

    /// Hides the tool from Python (it stays callable from Rust, with [`HostTools::call`]).
    pub fn hidden(mut self) -> Self {
        self.exposed_to_python = false;
        self
    }

    fn spec(&self) -> pb::ToolSpec {
        pb::ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self
                .parameters
                .iter()
                .map(|(name, kind, required)| pb::ParameterSpec {
                    name: name.clone(),
                    r#type: kind.clone(),
                    required: *required,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// The host tools of a run, shared by the bridge server and the code that registers them.
#[derive(Clone, Debug, Default)]
pub struct HostTools {
    tools: Arc<RwLock<BTreeMap<String, HostTool>>>,
    /// Tools workers announced (`RegisterTools`): tool name -> worker ids.
    registered: Arc<RwLock<BTreeMap<String, Vec<String>>>>,
}

impl HostTools {
    /// Adds or replaces a tool.
    pub fn register(&self, tool: HostTool) {
        if let Ok(mut t) = self.tools.write() {
            t.insert(tool.name.clone(), tool);
        }
    }

    /// Names of the host tools.
    pub fn names(&self) -> Vec<String> {
        self.tools
            .read()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Tools workers announced, with the workers that offer each.
    pub fn worker_tools(&self) -> BTreeMap<String, Vec<String>> {
        self.registered
            .read()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Calls a registered tool from Rust (hidden tools included) and returns its result.
    pub async fn call(&self, name: &str, call: HostToolCall) -> Result<Value, HostToolError> {
        let tool = self.get(name).ok_or_else(|| self.unknown(name))?;
        (tool.handler)(call)
            .await
            .map_err(|failure| HostToolError::Failed {
                name: name.to_owned(),
                failure,
            })
    }

    fn get(&self, name: &str) -> Option<HostTool> {
        self.tools.read().ok()?.get(name).cloned()
    }

    fn unknown(&self, name: &str) -> HostToolError {
        HostToolError::Unknown {
            name: name.to_owned(),
            available: self.names().join(", "),
        }
    }
}

/// Why a host tool call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostToolError {
    /// No tool of that name is registered (or, for Python, none is exposed).
    #[error("unknown host tool '{name}' (host tools: {available})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The registered tools, comma-separated.
        available: String,
    },
    /// The tool's handler returned an error.
    #[error("host tool '{name}' failed: {failure}")]
    Failed {
        /// The tool.
        name: String,
        /// What the handler returned.
        #[source]
        failure: ToolFailure,
    },
}

#[derive(Clone)]
struct BridgeServer {
    tools: HostTools,
    sessions: HostSessions,
    /// Whether calls arrive without the run token (the loopback TCP listener of the
    /// `snakepit` launch contract): host tools are then refused.
    tokenless: bool,
}

impl BridgeServer {
    fn refuse_host_tools(&self, rpc: &str) -> Result<(), Status> {
        if self.tokenless {
            return Err(Status::permission_denied(format!(
                "{rpc} needs the run token; the loopback listener of launch_contract = \"snakepit\" \
                 serves sessions, registration and liveness only (use launch_contract = \"native\" for host tools)"
            )));
        }
        Ok(())
    }
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

#[tonic::async_trait]
impl BridgeService for BridgeServer {
    async fn ping(
        &self,
        req: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        let message = format!("pong: {}", req.into_inner().message);
        Ok(Response::new(pb::PingResponse {
            message,
            server_time: Some(now()),
        }))
    }

    async fn initialize_session(
        &self,
        req: Request<pb::InitializeSessionRequest>,
    ) -> Result<Response<pb::InitializeSessionResponse>, Status> {
        let req = req.into_inner();
        // Idempotent: the original server initializes the session before every call.
        self.sessions.initialize(&req.session_id, req.metadata);
        Ok(Response::new(pb::InitializeSessionResponse {
            success: true,
            ..Default::default()
        }))
    }

    async fn cleanup_session(
        &self,
        req: Request<pb::CleanupSessionRequest>,
    ) -> Result<Response<pb::CleanupSessionResponse>, Status> {
        let removed = self.sessions.cleanup(&req.into_inner().session_id);
        Ok(Response::new(pb::CleanupSessionResponse {
            success: true,
            resources_cleaned: i32::from(removed),
        }))
    }

    async fn get_session(
        &self,
        req: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        let session_id = req.into_inner().session_id;
        let Some(session) = self.sessions.get(&session_id) else {
            return Err(Status::not_found(format!(
                "no session '{session_id}' on this host (InitializeSession creates it)"
            )));
        };
        let tool_count = i32::try_from(self.tools.worker_tools().len()).unwrap_or(i32::MAX);
        Ok(Response::new(pb::GetSessionResponse {
            session_id,
            metadata: session.metadata,
            created_at: Some(prost_types::Timestamp::from(session.created_at)),
            tool_count,
        }))
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let session_id = req.into_inner().session_id;
        let session_valid = session_id.is_empty() || self.sessions.get(&session_id).is_some();
        Ok(Response::new(pb::HeartbeatResponse {
            server_time: Some(now()),
            session_valid,
        }))
    }

    async fn execute_tool(
        &self,
        _req: Request<pb::ExecuteToolRequest>,
    ) -> Result<Response<pb::ExecuteToolResponse>, Status> {
        Err(Status::unimplemented(
            "ExecuteTool is served by workers; call the pool instead",
        ))
    }

    type ExecuteStreamingToolStream =
        Pin<Box<dyn futures::Stream<Item = Result<pb::ToolChunk, Status>> + Send + 'static>>;

    async fn execute_streaming_tool(
        &self,
        _req: Request<pb::ExecuteToolRequest>,
    ) -> Result<Response<Self::ExecuteStreamingToolStream>, Status> {
        Err(Status::unimplemented(
            "ExecuteStreamingTool is served by workers; call the pool instead",
        ))
    }

    async fn register_tools(
        &self,
        req: Request<pb::RegisterToolsRequest>,
    ) -> Result<Response<pb::RegisterToolsResponse>, Status> {
        let req = req.into_inner();
        let mut ids = HashMap::new();
        if let Ok(mut reg) = self.tools.registered.write() {
            for tool in req.tools {
                let workers = reg.entry(tool.name.clone()).or_default();
                if !workers.contains(&req.worker_id) {
                    workers.push(req.worker_id.clone());
                }
                ids.insert(
                    tool.name.clone(),
                    format!("{}:{}", req.worker_id, tool.name),
                );
            }
        }
        Ok(Response::new(pb::RegisterToolsResponse {
            success: true,
            tool_ids: ids,
            error_message: String::new(),
        }))
    }

    async fn get_exposed_elixir_tools(
        &self,
        _req: Request<pb::GetExposedElixirToolsRequest>,
    ) -> Result<Response<pb::GetExposedElixirToolsResponse>, Status> {
        self.refuse_host_tools("GetExposedElixirTools")?;
        let tools = self
            .tools
            .tools
            .read()
            .map(|t| {
                t.values()
                    .filter(|t| t.exposed_to_python)
                    .map(HostTool::spec)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(pb::GetExposedElixirToolsResponse { tools }))
    }

    async fn execute_elixir_tool(
        &self,
        req: Request<pb::ExecuteElixirToolRequest>,
    ) -> Result<Response<pb::ExecuteElixirToolResponse>, Status> {
        self.refuse_host_tools("ExecuteElixirTool")?;
        let req = req.into_inner();
        let started = Instant::now();
        let failure = |message: String| pb::ExecuteElixirToolResponse {
            success: false,
            error_message: message,
            ..Default::default()
        };
        let Some(tool) = self
            .tools
            .get(&req.tool_name)
            .filter(|t| t.exposed_to_python)
        else {
            return Ok(Response::new(failure(
                self.tools.unknown(&req.tool_name).to_string(),
            )));
        };
        let args = req
            .parameters
            .iter()
            .map(|(k, v)| {
                wire::decode_value(v)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| format!("argument '{k}' of host tool '{}': {e}", req.tool_name))
            })
            .collect();
        let args = match args {
            Ok(args) => args,
            Err(message) => return Ok(Response::new(failure(message))),
        };
        let call = HostToolCall {
            session_id: req.session_id,
            args,
            metadata: req.metadata,
        };
        let elapsed = |s: Instant| i64::try_from(s.elapsed().as_millis()).unwrap_or(i64::MAX);
        Ok(Response::new(match (tool.handler)(call).await {
            Ok(value) => pb::ExecuteElixirToolResponse {
                success: true,
                result: Some(wire::encode_value(&value)),
                execution_time_ms: elapsed(started),
                binary_result: Bytes::new(),
                ..Default::default()
            },
            Err(tool_failure) => failure(tool_failure.to_string()),
        }))
    }

    type StreamTelemetryStream =
        Pin<Box<dyn futures::Stream<Item = Result<pb::TelemetryEvent, Status>> + Send + 'static>>;

    async fn stream_telemetry(
        &self,
        _req: Request<tonic::Streaming<pb::TelemetryControl>>,
    ) -> Result<Response<Self::StreamTelemetryStream>, Status> {
        Err(Status::unimplemented(
            "StreamTelemetry is served by workers",
        ))
    }
}

/// The running host bridge server of one run. Dropping it stops the server.
#[derive(Debug)]
pub struct HostBridge {
    address: String,
    tcp_address: Option<String>,
    servers: Vec<(Option<oneshot::Sender<()>>, JoinHandle<()>)>,
    tools: HostTools,
    sessions: HostSessions,
}

impl HostBridge {
    /// Starts the server on `<run dir>/host.sock`; every call must carry the run token.
    pub async fn start(run: &RunContext, tools: HostTools) -> Result<Self, Error> {
        Self::start_on(run, tools, &HostBridgeListen::PrivateSocket).await
    }

    /// Starts the server where `listen` says (`grpc_host`/`grpc_port` ask for TCP); every call
    /// must carry the run token either way.
    pub async fn start_on(
        run: &RunContext,
        tools: HostTools,
        listen: &HostBridgeListen,
    ) -> Result<Self, Error> {
        let token = tonic::metadata::MetadataValue::try_from(run.token())
            .map_err(|_| Error::pool("the run token is not valid ASCII metadata"))?;
        let check = move |req: Request<()>| -> Result<Request<()>, Status> {
            match req.metadata().get(TOKEN_METADATA_KEY) {
                Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => Ok(req),
                _ => Err(Status::unauthenticated("missing or wrong x-snakepit-token")),
            }
        };
        let sessions = HostSessions::default();
        let service = BridgeServiceServer::with_interceptor(
            BridgeServer {
                tools: tools.clone(),
                sessions: sessions.clone(),
                tokenless: false,
            },
            check,
        );
        let server = tonic::transport::Server::builder().add_service(service);
        let (address, server) = match listen {
            HostBridgeListen::PrivateSocket => {
                let path = run.dir().join("host.sock");
                let _ = std::fs::remove_file(&path);
                let listener = tokio::net::UnixListener::bind(&path).map_err(|e| {
                    Error::pool(format!("cannot listen on {}: {e}", path.display()))
                })?;
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                (format!("unix:{}", path.display()), serve(server, incoming))
            }
            HostBridgeListen::Tcp { host, port } => {
                let listener = tokio::net::TcpListener::bind((host.as_str(), *port))
                    .await
                    .map_err(|e| {
                        Error::pool(format!(
                            "cannot listen on {host}:{port} (grpc_host/grpc_port): {e}; pick a free port, 0 for any, or drop grpc_port to use the private socket"
                        ))
                    })?;
                let bound = listener.local_addr().map_err(|e| {
                    Error::pool(format!("cannot read the host bridge address: {e}"))
                })?;
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                (bound.to_string(), serve(server, incoming))
            }
        };
        Ok(Self {
            address,
            tcp_address: None,
            servers: vec![server],
            tools,
            sessions,
        })
    }

    /// Also listens on `127.0.0.1:<any port>` without a token, for worker servers written for
    /// the original protocol (`launch_contract = "snakepit"`), and returns that `host:port`.
    ///
    /// The original's client sends no token and an `:authority` that h2 rejects on a Unix
    /// socket, so this listener is TCP and tokenless; it serves sessions, tool registration,
    /// Ping and Heartbeat, and refuses host tools (they stay behind the token). Calling it
    /// again returns the same address.
    pub async fn listen_loopback_tcp(&mut self) -> Result<String, Error> {
        if let Some(addr) = &self.tcp_address {
            return Ok(addr.clone());
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| {
                Error::pool(format!(
                    "cannot listen on 127.0.0.1 for the host bridge: {e}"
                ))
            })?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::pool(format!("cannot read the host bridge's TCP address: {e}")))?;
        let service = BridgeServiceServer::new(BridgeServer {
            tools: self.tools.clone(),
            sessions: self.sessions.clone(),
            tokenless: true,
        });
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        self.servers.push(serve(
            tonic::transport::Server::builder().add_service(service),
            incoming,
        ));
        let addr = local.to_string();
        self.tcp_address = Some(addr.clone());
        Ok(addr)
    }

    /// The address workers are given (`--elixir-address`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The loopback TCP address, when [`HostBridge::listen_loopback_tcp`] was called.
    pub fn tcp_address(&self) -> Option<&str> {
        self.tcp_address.as_deref()
    }

    /// The sessions workers initialized on this host.
    pub fn sessions(&self) -> &HostSessions {
        &self.sessions
    }

    /// The tools this server offers.
    pub fn tools(&self) -> &HostTools {
        &self.tools
    }
}

impl Drop for HostBridge {
    fn drop(&mut self) {
        for (stop, task) in &mut self.servers {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
            task.abort();
        }
    }
}

/// Serves `router` on `incoming` until the returned sender fires (or the task is aborted).
fn serve<I, IO, IE>(
    router: tonic::transport::server::Router,
    incoming: I,
) -> (Option<oneshot::Sender<()>>, JoinHandle<()>)
where
    I: futures::Stream<Item = Result<IO, IE>> + Send + 'static,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "host bridge server failed");
        }
    });
    (Some(stop), task)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
