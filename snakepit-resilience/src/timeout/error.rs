//! Timeout errors: an expired limit is reported as `snakepit_core::Error::Timeout`.
//!
//! The `operation` field tells the layers apart: [`ATTEMPT_OPERATION`](super::ATTEMPT_OPERATION)
//! for the per-attempt timeout, [`CALL_OPERATION`](crate::deadline::CALL_OPERATION) for the
//! overall deadline.

use std::time::Duration;

use snakepit_core::Error;

/// Builds the error of an expired limit.
pub(crate) fn elapsed(operation: &'static str, limit: Duration) -> Error {
    Error::timeout(operation, limit)
}
