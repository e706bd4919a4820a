//! One supervised Python worker process and its client (`fast` or `grpc` transport).
//!
//! [`Worker::start`] spawns `python -m snakepit_bridge.server` (or a configured script speaking
//! the same protocol) in its own process group, listening on a Unix socket inside the run's
//! private 0700 directory ([`RunContext`]), with the run token in its environment. It waits for
//! the ready file, connects, and returns a worker whose [`WorkerClient`] is a
//! `tower::Service<ToolCall>`. Tool calls travel over the pool's transport: `fast` (the bridge's
//! protobuf messages in length-prefixed frames on a second private socket, the default) or
//! `grpc`; heartbeat pings always use gRPC. Stopping is SIGTERM, a grace period, then SIGKILL of the group;
//! dropping a [`Worker`] kills its group, so a worker never outlives its handle.
//!
//! This crate is the only place where `tonic::Status` becomes a [`snakepit_core::Error`].

pub mod cleanup;
mod client;
mod heartbeat;
#[cfg(feature = "host-bridge")]
pub mod host_bridge;
#[cfg(feature = "host-bridge")]
mod host_sessions;
mod process;
pub mod python_env;
pub mod registry;
mod run;
pub mod shm;
mod snakepit_contract;
mod telemetry_stream;
mod transport;
mod wire;
mod worker;
mod zygote;

pub use client::{unix_channel, WorkerAddress, WorkerClient};
pub use heartbeat::HeartbeatStatus;
pub use process::{ExitInfo, ExitKind, HostSignal, HOST_PIPE_ENV_VAR};
pub use run::RunContext;
pub use worker::{
    Worker, WorkerSpec, DEFAULT_WORKER_EXECUTE_TIMEOUT, RUN_ID_ENV_VAR, TOKEN_ENV_VAR,
};
