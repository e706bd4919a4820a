//! The `grpc` transport: tonic's `BridgeService` client with the run token on every call.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use snakepit_core::config::TransportKind;
use snakepit_core::Error;
use snakepit_proto::pb::{self, BridgeServiceClient};
use snakepit_proto::{CORRELATION_METADATA_KEY, TOKEN_METADATA_KEY};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use super::{CallMeta, Transport, TransportFuture, WireChunkStream};

/// tonic's client of one worker; also the control plane (Ping) of every transport.
#[derive(Clone, Debug)]
pub(crate) struct GrpcTransport {
    inner: BridgeServiceClient<Channel>,
    token: Arc<MetadataValue<Ascii>>,
}

impl GrpcTransport {
    /// A client on `channel` that sends `token` with every call.
    pub(crate) fn new(channel: Channel, token: &str) -> Result<Self, Error> {
        let token = MetadataValue::try_from(token)
            .map_err(|_| Error::pool("the run token is not valid ASCII metadata"))?;
        let inner = BridgeServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        Ok(Self {
            inner,
            token: Arc::new(token),
        })
    }

    fn request<T>(
        &self,
        msg: T,
        timeout: Option<Duration>,
        correlation_id: &str,
    ) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        // An empty token is the `snakepit` launch contract's: the original sends none.
        if !self.token.is_empty() {
            req.metadata_mut()
                .insert(TOKEN_METADATA_KEY, (*self.token).clone());
        }
        if let Ok(v) = MetadataValue::try_from(correlation_id) {
            req.metadata_mut().insert(CORRELATION_METADATA_KEY, v);
        }
        if let Some(t) = timeout {
            // Sent as grpc-timeout, so the Python side sees its deadline.
            req.set_timeout(t);
        }
        req
    }

    /// Sends a `Ping` with a 10 s deadline.
    pub(crate) async fn ping(&self) -> Result<(), tonic::Status> {
        let req = self.request(
            pb::PingRequest {
                message: "ping".into(),
            },
            Some(Duration::from_secs(10)),
            "ping",
        );
        self.inner.clone().ping(req).await.map(|_| ())
    }

    /// Sends `CleanupSession` for `session_id` with a 10 s deadline.
    pub(crate) async fn cleanup_session(
        &self,
        session_id: String,
    ) -> Result<pb::CleanupSessionResponse, tonic::Status> {
        let req = self.request(
            pb::CleanupSessionRequest {
                session_id,
                force: true,
            },
            Some(Duration::from_secs(10)),
            "cleanup-session",
        );
        self.inner
            .clone()
            .cleanup_session(req)
            .await
            .map(|r| r.into_inner())
    }
}

impl Transport for GrpcTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Grpc
    }

    fn execute(
        &self,
        request: pb::ExecuteToolRequest,
        meta: CallMeta,
    ) -> TransportFuture<pb::ExecuteToolResponse> {
        let req = self.request(request, meta.timeout, &meta.correlation_id);
        let mut inner = self.inner.clone();
        Box::pin(async move {
            inner
                .execute_tool(req)
                .await
                .map(tonic::Response::into_inner)
        })
    }

    fn execute_stream(
        &self,
        request: pb::ExecuteToolRequest,
        meta: CallMeta,
    ) -> TransportFuture<WireChunkStream> {
        let req = self.request(request, meta.timeout, &meta.correlation_id);
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let stream = inner.execute_streaming_tool(req).await?.into_inner();
            Ok(stream.boxed())
        })
    }
}
