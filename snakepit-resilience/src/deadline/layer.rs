//! The overall deadline's layer: carries only the default limit.

use std::time::Duration;

use tower::Layer;

use super::Deadline;

/// Applies [`Deadline`] to services.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    default_timeout: Duration,
}

impl DeadlineLayer {
    /// Creates a layer whose calls that ask for no timeout get `default_timeout`.
    pub fn new(default_timeout: Duration) -> Self {
        Self { default_timeout }
    }

    /// Returns the limit of calls that ask for no timeout.
    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline::new(inner, self.default_timeout)
    }
}
