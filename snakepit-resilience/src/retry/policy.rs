//! The seeds' `RetryPolicy`: attempts, backoff (list or exponential), jitter, retriable kinds.

use std::error::Error as StdError;
use std::time::Duration;

use rand::Rng;
use snakepit_core::{Error, ErrorKind};

/// Which errors a retry may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetriableErrors {
    /// Every error (the seeds' `:all`), foreign ones included.
    All,
    /// Errors whose [`ErrorKind`] (found along the `source()` chain) is listed.
    Kinds(Vec<ErrorKind>),
}

impl RetriableErrors {
    /// Returns whether `error` may be retried.
    pub fn matches(&self, error: &(dyn StdError + 'static)) -> bool {
        match self {
            RetriableErrors::All => true,
            RetriableErrors::Kinds(kinds) => {
                Error::kind_of(error).is_some_and(|k| kinds.contains(&k))
            }
        }
    }

    /// Parses a seeds name: a kind name (`timeout`, `worker_crash`, ...) or an alias the seeds use
    /// for a transport failure (`unavailable`, `connection_refused`).
    pub fn kind_from_name(name: &str) -> Option<ErrorKind> {
        const KINDS: [ErrorKind; 11] = [
            ErrorKind::Pool,
            ErrorKind::Worker,
            ErrorKind::WorkerCrash,
            ErrorKind::Timeout,
            ErrorKind::QueueTimeout,
            ErrorKind::Saturated,
            ErrorKind::Validation,
            ErrorKind::PythonException,
            ErrorKind::Transport,
            ErrorKind::CircuitOpen,
            ErrorKind::Config,
        ];
        match name {
            "unavailable" | "connection_refused" | "grpc_error" => Some(ErrorKind::Transport),
            "python_error" => Some(ErrorKind::PythonException),
            _ => KINDS.into_iter().find(|k| k.as_str() == name),
        }
    }
}

impl Default for RetriableErrors {
    /// The seeds' `[:timeout, :unavailable, :connection_refused, :worker_crash]`.
    fn default() -> Self {
        RetriableErrors::Kinds(vec![
            ErrorKind::Timeout,
            ErrorKind::Transport,
            ErrorKind::WorkerCrash,
        ])
    }
}

/// When and how long to wait before retrying, with the seeds' option names and defaults.
///
/// `max_attempts` counts every attempt, the first included (3 = one call and two retries).
/// The delay after failed attempt `n` is `backoff_ms[n-1]`; past the end of the list each
/// further delay is the previous one times `backoff_multiplier`; with an empty list it is
/// `base_backoff_ms × backoff_multiplier^(n-1)`. Delays are capped at `max_backoff_ms`, then
/// jittered by ±`jitter_factor` when `jitter` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3).
    pub max_attempts: u32,
    /// Delays in ms after the 1st, 2nd, ... failed attempt (default `[100, 200, 400, 800, 1600]`).
    pub backoff_ms: Vec<u64>,
    /// First delay of the exponential backoff used when `backoff_ms` is empty (default 100).
    pub base_backoff_ms: u64,
    /// Growth factor of each further delay (default 2.0).
    pub backoff_multiplier: f64,
    /// Upper bound of any delay before jitter (default 30 000).
    pub max_backoff_ms: u64,
    /// Whether delays are jittered (default `false`).
    pub jitter: bool,
    /// Jitter range as a fraction of the delay (default 0.25: a 100 ms delay becomes 75–125 ms).
    pub jitter_factor: f64,
    /// The errors worth a retry (default: timeout, transport, worker crash).
    pub retriable_errors: RetriableErrors,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_ms: vec![100, 200, 400, 800, 1600],
            base_backoff_ms: 100,
            backoff_multiplier: 2.0,
            max_backoff_ms: 30_000,
            jitter: false,
            jitter_factor: 0.25,
            retriable_errors: RetriableErrors::default(),
        }
    }
}

impl RetryPolicy {
    /// Returns the defaults of the seeds' `Executor.execute_with_retry`: 3 attempts,
    /// `[100, 200, 400]`, timeouts and transport failures (`:unavailable`), no jitter.
    pub fn executor_default() -> Self {
        Self {
            backoff_ms: vec![100, 200, 400],
            retriable_errors: RetriableErrors::Kinds(vec![
                ErrorKind::Timeout,
                ErrorKind::Transport,
            ]),
            ..Self::default()
        }
    }

    /// Returns whether another attempt is allowed after `attempt` attempts were made.
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Returns whether `error` is retriable under this policy.
    pub fn retry_for_error(&self, error: &(dyn StdError + 'static)) -> bool {
        self.retriable_errors.matches(error)
    }

    /// Returns the delay after failed attempt `attempt` (counting from 1), jittered when enabled.
    pub fn backoff_for_attempt(&self, attempt: u32) -> Duration {
        let base = self.base_delay_ms(attempt).min(self.max_backoff_ms as f64);
        let ms = if self.jitter && self.jitter_factor > 0.0 {
            let factor = self.jitter_factor.min(1.0);
            base * (1.0 + rand::thread_rng().gen_range(-factor..=factor))
        } else {
            base
        };
        // Microsecond precision keeps jittered delays honest; NaN and negatives become zero.
        let micros = (ms * 1000.0).round();
        if micros.is_finite() && micros > 0.0 {
            Duration::from_micros(micros as u64)
        } else {
            Duration::ZERO
        }
    }

    /// The delay before cap and jitter, in ms.
    fn base_delay_ms(&self, attempt: u32) -> f64 {
        let index = attempt.max(1) as usize - 1;
        // Past a few hundred steps every sane policy sits at its cap; keep powi in range.
        let steps = |n: usize| n.min(1_000) as i32;
        match self.backoff_ms.get(index) {
            Some(&ms) => ms as f64,
            None => match self.backoff_ms.last() {
                Some(&last) => {
                    last as f64
                        * self
                            .backoff_multiplier
                            .powi(steps(index + 1 - self.backoff_ms.len()))
                }
                None => self.base_backoff_ms as f64 * self.backoff_multiplier.powi(steps(index)),
            },
        }
    }
}
