//! Retry as a tower middleware: idempotent calls only, exponential backoff, a retry budget.
//!
//! The service is tower's [`tower::retry::Retry`] driven by [`RetryAttempts`], which applies a
//! [`RetryPolicy`] (the seeds' options) and draws on a [`RetryBudget`] (tower's `TpsBudget`).
//! A call is retried only when the request is idempotent ([`RetryableRequest`]), the error is
//! retriable, attempts are left, the budget allows it and the deadline leaves time. The inner
//! service's error must be a `BoxError`, which every layer of this crate produces.
//!
//! [`RetryableRequest`]: crate::RetryableRequest

mod attempts;
mod budget;
pub mod future;
mod layer;
mod policy;
#[cfg(test)]
mod tests;

pub use attempts::RetryAttempts;
pub use budget::RetryBudget;
pub use layer::RetryLayer;
pub use policy::{RetriableErrors, RetryPolicy};

/// The retry service: tower's `Retry` driven by [`RetryAttempts`].
pub type Retry<S> = tower::retry::Retry<RetryAttempts, S>;
