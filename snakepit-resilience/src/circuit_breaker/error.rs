//! The breaker's error: an open circuit is reported as `snakepit_core::Error::CircuitOpen`.
//!
//! Callers classify it by type (`Error::kind_of(&err) == Some(ErrorKind::CircuitOpen)`),
//! never by message.

use std::time::Duration;

use snakepit_core::Error;

use super::machine::Rejection;

/// Builds the error a rejected call ends with.
pub(crate) fn circuit_open(rejection: Rejection) -> Error {
    Error::CircuitOpen {
        failures: rejection.failures,
        retry_after: rejection.retry_after,
    }
}

/// Returns how long until the breaker that produced `error` admits a probe, if it is an open-circuit error.
pub fn retry_after(error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(Error::CircuitOpen { retry_after, .. }) = e.downcast_ref::<Error>() {
            return Some(*retry_after);
        }
        current = e.source();
    }
    None
}
