//! The transports that carry tool calls to a worker, behind one trait.
//!
//! [`Transport`] moves the bridge's protobuf messages and reports failures as `tonic::Status`;
//! [`WorkerClient`](crate::WorkerClient) builds the requests, maps statuses to core errors (in
//! one function, `wire::status_to_error`) and recognises crashes, whichever transport carried
//! the call. `grpc` is tonic's `BridgeService` client; `fast` sends the same messages as
//! length-prefixed frames with a request id over the worker's second Unix socket.

pub(crate) mod codec;
mod fast;
mod grpc;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use snakepit_core::config::TransportKind;
use snakepit_proto::pb;

pub(crate) use fast::FastTransport;
pub(crate) use grpc::GrpcTransport;

/// What a call carries besides its request: the worker's deadline and the correlation id.
#[derive(Debug, Clone)]
pub(crate) struct CallMeta {
    /// Time the worker has for the call (`grpc-timeout`, or the fast frame's `timeout_ms`).
    pub(crate) timeout: Option<Duration>,
    /// The call's correlation id (also in the request's `metadata` map).
    pub(crate) correlation_id: String,
}

/// A future of a transport: the message, or the status the call ended with.
pub(crate) type TransportFuture<T> =
    Pin<Box<dyn Future<Output = Result<T, tonic::Status>> + Send + 'static>>;

/// The chunks of a streaming call as they arrive, or the status that ended it.
pub(crate) type WireChunkStream =
    Pin<Box<dyn Stream<Item = Result<pb::ToolChunk, tonic::Status>> + Send + 'static>>;

/// Carries tool calls to one worker. Dropping a returned future or stream cancels the call
/// on the worker.
pub(crate) trait Transport: Send + Sync + std::fmt::Debug {
    /// Which transport this is.
    fn kind(&self) -> TransportKind;

    /// Runs one unary call.
    fn execute(
        &self,
        request: pb::ExecuteToolRequest,
        meta: CallMeta,
    ) -> TransportFuture<pb::ExecuteToolResponse>;

    /// Starts a streaming call; the stream ends after the chunk marked `is_final`.
    fn execute_stream(
        &self,
        request: pb::ExecuteToolRequest,
        meta: CallMeta,
    ) -> TransportFuture<WireChunkStream>;
}
