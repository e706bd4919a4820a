//! Pools of Python workers: concurrent batched start-up, a bounded FIFO queue, session
//! affinity, streaming, supervision (dead workers are replaced) and clean shutdown.
//!
//! ```no_run
//! use snakepit_core::{config::PoolConfig, CallOptions};
//! use snakepit_pool::Pool;
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), snakepit_core::Error> {
//! let pool = Pool::start(PoolConfig::showcase(2)).await?;
//! pool.await_ready(Duration::from_secs(15)).await?;
//! let sum = pool.execute("add", serde_json::json!({"a": 2, "b": 3}), CallOptions::default()).await?;
//! assert_eq!(sum.json, serde_json::json!(5));
//! pool.shutdown().await;
//! # Ok(()) }
//! ```

mod builder;
mod control;
mod crash_barrier;
mod crash_handling;
mod factory;
mod lifecycle;
mod pool;
mod pool_set;
mod resilience;
mod scheduler;
pub mod script;
mod service;
mod session_store;
mod sessions;
mod stats;
mod stream;

// The Rust snippets of the READMEs compile as doctests, so the docs cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct PoolReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ProjectReadmeDoctests;

pub use builder::PoolBuilder;
pub use crash_barrier::CrashKind;
pub use crash_handling::CrashBarrierStats;
pub use factory::{WorkerFactory, WorkerHandle};
pub use pool::{Pool, PoolService};
pub use pool_set::PoolSet;
pub use service::{CallMode, WorkerCall, WorkerReply, WorkerService};
pub use session_store::{Session, SessionEvent, SessionOptions};
pub use snakepit_worker::cleanup::CleanupOutcome;
pub use stats::{PoolStats, WorkerInfo, WorkerState};
