//! Domain types, the error taxonomy and configuration shared by every snakepit-rs crate.
//!
//! `snakepit-core` is the leaf of the workspace: it knows nothing of gRPC or processes.
//! It holds the identifiers ([`WorkerId`], [`SessionId`], [`RunId`]), the values that
//! travel through a pool ([`Payload`], [`ToolCall`], [`Chunk`]), the one error
//! vocabulary every crate speaks ([`Error`], [`ErrorKind`]) and the pool configuration
//! ([`config::SnakepitConfig`]) with the seeds' option names, defaults and validation.

pub mod array;
mod array_ext;
pub mod config;
mod error;
mod ids;
pub mod json_limits;
mod payload;
mod python_error;

pub use array::{ArrayData, ArrayFormat, DType, Element};
pub use error::{BoxError, Error, ErrorKind, PythonException, Result};
pub use ids::{RunId, SessionId, WorkerId};
pub use payload::{CallOptions, Chunk, ChunkStream, Payload, ToolCall, MAX_CALL_TIMEOUT};
pub use python_error::{PythonErrorDetail, PythonErrorKind};
