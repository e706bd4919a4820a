//! Which errors count as breaker failures: a pluggable classifier and the default choice.

use std::error::Error as StdError;
use std::fmt;

use snakepit_core::{Error, ErrorKind};

/// Decides whether an error counts against the breaker.
///
/// Errors that do not count are recorded as successes: the service answered, even if the
/// answer was an error (a Python exception raised by the tool, a validation error).
pub trait FailureClassifier: Send + Sync {
    /// Returns whether `error` is a failure of the service (rather than of the request).
    fn is_failure(&self, error: &(dyn StdError + 'static)) -> bool;
}

impl<F> FailureClassifier for F
where
    F: Fn(&(dyn StdError + 'static)) -> bool + Send + Sync,
{
    fn is_failure(&self, error: &(dyn StdError + 'static)) -> bool {
        self(error)
    }
}

/// Counts errors whose [`ErrorKind`] (found along the `source()` chain) is in a set.
///
/// Errors that are not snakepit errors (from an arbitrary wrapped service) count as failures
/// when `count_foreign` is set; the default does, since nothing else is known about them.
#[derive(Clone, PartialEq, Eq)]
pub struct FailureKinds {
    kinds: Vec<ErrorKind>,
    count_foreign: bool,
}

impl FailureKinds {
    /// Counts the given kinds, and foreign errors.
    pub fn new(kinds: impl IntoIterator<Item = ErrorKind>) -> Self {
        Self {
            kinds: kinds.into_iter().collect(),
            count_foreign: true,
        }
    }

    /// Sets whether errors that are not snakepit errors count as failures.
    pub fn count_foreign(mut self, count: bool) -> Self {
        self.count_foreign = count;
        self
    }

    /// Returns the kinds counted as failures.
    pub fn kinds(&self) -> &[ErrorKind] {
        &self.kinds
    }
}

impl Default for FailureKinds {
    /// Counts transport errors, timeouts and worker crashes: the worker or the link to it is
    /// failing. A Python exception raised by the tool, a validation error, an open breaker
    /// further in or a full queue say nothing about the worker's health and do not count.
    fn default() -> Self {
        Self::new([
            ErrorKind::Transport,
            ErrorKind::Timeout,
            ErrorKind::WorkerCrash,
        ])
    }
}

impl FailureClassifier for FailureKinds {
    fn is_failure(&self, error: &(dyn StdError + 'static)) -> bool {
        match Error::kind_of(error) {
            Some(kind) => self.kinds.contains(&kind),
            None => self.count_foreign,
        }
    }
}

impl fmt::Debug for FailureKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureKinds")
            .field("kinds", &self.kinds)
            .field("count_foreign", &self.count_foreign)
            .finish()
    }
}
