//! The snakepit bridge gRPC protocol: generated Rust behind a curated [`pb`] module.
//!
//! `proto/snakepit_bridge.proto` is the interoperability contract with the original
//! Snakepit bridge (field names and numbers are fixed). The Rust in `src/generated/` is
//! produced by `cargo xtask codegen` (pure-Rust protox + tonic-prost-build, no system
//! protoc) and committed; `cargo xtask codegen --check` fails when it drifts.

#[rustfmt::skip]
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic, rust_2018_idioms)]
mod generated {
    include!("generated/snakepit.bridge.rs");
}

/// The protocol's messages, client and server, re-exported from the generated code.
pub mod pb {
    pub use crate::generated::bridge_service_client::BridgeServiceClient;
    pub use crate::generated::bridge_service_server::{BridgeService, BridgeServiceServer};
    pub use crate::generated::{
        telemetry_control, telemetry_value, CleanupSessionRequest, CleanupSessionResponse,
        ExecuteElixirToolRequest, ExecuteElixirToolResponse, ExecuteToolRequest,
        ExecuteToolResponse, GetExposedElixirToolsRequest, GetExposedElixirToolsResponse,
        GetSessionRequest, GetSessionResponse, HeartbeatRequest, HeartbeatResponse,
        InitializeSessionRequest, InitializeSessionResponse, ParameterSpec, PingRequest,
        PingResponse, RegisterToolsRequest, RegisterToolsResponse, SessionConfig, TelemetryControl,
        TelemetryEvent, TelemetryEventFilter, TelemetrySamplingUpdate, TelemetryToggle,
        TelemetryValue, ToolChunk, ToolRegistration, ToolSpec,
    };
    pub use prost_types::{Any, Timestamp};
}

/// The gRPC metadata key carrying the per-run token, required on every call in both directions.
pub const TOKEN_METADATA_KEY: &str = "x-snakepit-token";
/// The gRPC metadata key carrying the correlation id of a call.
pub const CORRELATION_METADATA_KEY: &str = "x-snakepit-correlation-id";
/// The `type_url` prefix of parameter and result values (`type.googleapis.com/snakepit.<type>`).
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/snakepit.";

#[cfg(test)]
mod tests {
    use super::pb;
    use prost::Message;

    #[test]
    fn field_numbers_match_the_contract() {
        // binary_parameters is field 6 (length-delimited map entry): tag byte (6 << 3) | 2 = 0x32.
        let mut req = pb::ExecuteToolRequest::default();
        req.binary_parameters.insert("k".into(), vec![1u8].into());
        let bytes = req.encode_to_vec();
        assert_eq!(bytes[0], 0x32);
        // is_final is field 3 (varint): tag byte (3 << 3) | 0 = 0x18.
        let chunk = pb::ToolChunk {
            is_final: true,
            ..Default::default()
        };
        assert_eq!(chunk.encode_to_vec(), vec![0x18, 1]);
    }
}
