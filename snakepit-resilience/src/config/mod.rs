//! The resilience configuration: the seeds' `circuit_breaker` and `retry` tables, plus timeouts.
//!
//! ```toml
//! [circuit_breaker]          # absent: no breaker
//! enabled = true             # default true when the table is present
//! failure_threshold = 5
//! reset_timeout_ms = 30000
//! half_open_max_calls = 1
//!
//! [retry]                    # absent: no retry
//! enabled = true             # default true when the table is present
//! max_attempts = 3
//! backoff_ms = [100, 200, 400, 800, 1600]
//! base_backoff_ms = 100      # used alone (without backoff_ms) for pure exponential backoff
//! backoff_multiplier = 2.0
//! max_backoff_ms = 30000
//! jitter = false
//! jitter_factor = 0.25
//! retriable_errors = ["timeout", "unavailable", "connection_refused", "worker_crash"]  # or "all"
//! budget_ttl_ms = 10000      # retry budget (snakepit-rs addition)
//! budget_min_per_sec = 10
//! budget_retry_percent = 0.2
//!
//! [timeouts]                 # snakepit-rs addition
//! call_timeout_ms = 60000    # overall deadline for calls that set no timeout
//! attempt_timeout_ms = 10000 # per-attempt limit; absent: none
//! ```

#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::Deserialize;
use snakepit_core::config::ConfigError;

use crate::circuit_breaker::CircuitBreakerConfig;
use crate::retry::{RetriableErrors, RetryBudget, RetryPolicy};

/// The default overall deadline of a call that sets no timeout (the seeds' 60 s call timeout).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(60_000);

/// The fault-tolerance options of a pool, as written in `snakepit.toml`.
///
/// Every field is optional; [`ResilienceStack::from_config`](crate::ResilienceStack::from_config)
/// validates them and fills in the seeds' defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResilienceConfig {
    /// The `circuit_breaker` table; absent means no breaker.
    pub circuit_breaker: Option<CircuitBreakerSection>,
    /// The `retry` table; absent means no retry.
    pub retry: Option<RetrySection>,
    /// The `timeouts` table; absent means the default overall deadline and no per-attempt limit.
    pub timeouts: Option<TimeoutsSection>,
}

/// The `circuit_breaker` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerSection {
    /// Whether the breaker is on (default `true` when the table is present).
    pub enabled: Option<bool>,
    /// Consecutive failures that open the breaker (default 5, at least 1).
    pub failure_threshold: Option<u32>,
    /// Time in ms before an open breaker admits probes (default 30 000, at least 1).
    pub reset_timeout_ms: Option<u64>,
    /// Probes admitted at once while half-open (default 1, at least 1).
    pub half_open_max_calls: Option<u32>,
}

/// The `retry` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// Whether retry is on (default `true` when the table is present).
    pub enabled: Option<bool>,
    /// Attempts in all, the first included (default 3, at least 1).
    pub max_attempts: Option<u32>,
    /// Delays in ms after each failed attempt (default `[100, 200, 400, 800, 1600]`).
    pub backoff_ms: Option<Vec<u64>>,
    /// Base of the exponential backoff; set without `backoff_ms` it selects pure exponential backoff.
    pub base_backoff_ms: Option<u64>,
    /// Growth factor of the backoff (default 2.0, at least 1.0).
    pub backoff_multiplier: Option<f64>,
    /// Cap of any delay in ms (default 30 000).
    pub max_backoff_ms: Option<u64>,
    /// Whether delays are jittered (default `false`).
    pub jitter: Option<bool>,
    /// Jitter range as a fraction of the delay (default 0.25, from 0.0 to 1.0).
    pub jitter_factor: Option<f64>,
    /// Error kinds worth a retry, or `"all"`.
    pub retriable_errors: Option<RetriableErrorsSetting>,
    /// Window of the retry budget in ms (default 10 000, from 1 000 to 60 000).
    pub budget_ttl_ms: Option<u64>,
    /// Retries a second the budget always allows (default 10).
    pub budget_min_per_sec: Option<u32>,
    /// Share of calls the budget lets retry (default 0.2 = 20 %).
    pub budget_retry_percent: Option<f32>,
}

/// The `retriable_errors` value: `"all"` or a list of kind names.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RetriableErrorsSetting {
    /// A single name; only `"all"` is allowed.
    Name(String),
    /// Kind names (`timeout`, `transport`, `worker_crash`, ... and the seeds' `unavailable`,
    /// `connection_refused`).
    List(Vec<String>),
}

/// The `timeouts` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    /// Overall deadline in ms of calls that set no timeout (default 60 000, at least 1).
    pub call_timeout_ms: Option<u64>,
    /// Limit in ms of each attempt (default: none, at least 1).
    pub attempt_timeout_ms: Option<u64>,
}

impl ResilienceConfig {
    /// Parses a TOML document holding the tables above.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            source_name: "resilience configuration".into(),
            message: e.to_string(),
        })
    }

    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.circuit_breaker_config()?;
        self.retry_config()?;
        self.call_timeout()?;
        self.attempt_timeout()?;
        Ok(())
    }

    /// Returns the breaker's configuration, `None` when it is off.
    pub fn circuit_breaker_config(&self) -> Result<Option<CircuitBreakerConfig>, ConfigError> {
        let Some(section) = &self.circuit_breaker else {
            return Ok(None);
        };
        if section.enabled == Some(false) {
            return Ok(None);
        }
        let defaults = CircuitBreakerConfig::default();
        Ok(Some(CircuitBreakerConfig {
            failure_threshold: at_least_one(
                "circuit_breaker.failure_threshold",
                section.failure_threshold,
            )?
            .unwrap_or(defaults.failure_threshold),
            reset_timeout: at_least_one(
                "circuit_breaker.reset_timeout_ms",
                section.reset_timeout_ms,
            )?
            .map_or(defaults.reset_timeout, Duration::from_millis),
            half_open_max_calls: at_least_one(
                "circuit_breaker.half_open_max_calls",
                section.half_open_max_calls,
            )?
            .unwrap_or(defaults.half_open_max_calls),
        }))
    }

    /// Returns the retry policy and budget, `None` when retry is off.
    pub fn retry_config(&self) -> Result<Option<(RetryPolicy, RetryBudget)>, ConfigError> {
        let Some(section) = &self.retry else {
            return Ok(None);
        };
        if section.enabled == Some(false) {
            return Ok(None);
        }
        let defaults = RetryPolicy::default();
        let exponential_only = section.backoff_ms.is_none()
            && (section.base_backoff_ms.is_some() || section.backoff_multiplier.is_some());
        let backoff_multiplier = match section.backoff_multiplier {
            Some(m) if !(m.is_finite() && m >= 1.0) => {
                return Err(invalid(
                    "retry.backoff_multiplier",
                    m,
                    "a number of at least 1.0",
                ))
            }
            Some(m) => m,
            None => defaults.backoff_multiplier,
        };
        let jitter_factor = match section.jitter_factor {
            Some(f) if !(0.0..=1.0).contains(&f) => {
                return Err(invalid(
                    "retry.jitter_factor",
                    f,
                    "a fraction from 0.0 to 1.0",
                ))
            }
            Some(f) => f,
            None => defaults.jitter_factor,
        };
        let policy = RetryPolicy {
            max_attempts: at_least_one("retry.max_attempts", section.max_attempts)?
                .unwrap_or(defaults.max_attempts),
            backoff_ms: match (&section.backoff_ms, exponential_only) {
                (Some(list), _) => list.clone(),
                (None, true) => Vec::new(),
                (None, false) => defaults.backoff_ms,
            },
            base_backoff_ms: section.base_backoff_ms.unwrap_or(defaults.base_backoff_ms),
            backoff_multiplier,
            max_backoff_ms: section.max_backoff_ms.unwrap_or(defaults.max_backoff_ms),
            jitter: section.jitter.unwrap_or(defaults.jitter),
            jitter_factor,
            retriable_errors: match &section.retriable_errors {
                Some(setting) => parse_retriable(setting)?,
                None => defaults.retriable_errors,
            },
        };
        let budget_defaults = RetryBudget::default();
        let budget = RetryBudget::new(
            section
                .budget_ttl_ms
                .map_or(budget_defaults.ttl(), Duration::from_millis),
            section
                .budget_min_per_sec
                .unwrap_or(budget_defaults.min_per_sec()),
            section
                .budget_retry_percent
                .unwrap_or(budget_defaults.retry_percent()),
        )?;
        Ok(Some((policy, budget)))
    }

    /// Returns the overall deadline of calls that set no timeout.
    pub fn call_timeout(&self) -> Result<Duration, ConfigError> {
        let ms = self.timeouts.as_ref().and_then(|t| t.call_timeout_ms);
        Ok(at_least_one("timeouts.call_timeout_ms", ms)?
            .map_or(DEFAULT_CALL_TIMEOUT, Duration::from_millis))
    }

    /// Returns the per-attempt limit, `None` when there is none.
    pub fn attempt_timeout(&self) -> Result<Option<Duration>, ConfigError> {
        let ms = self.timeouts.as_ref().and_then(|t| t.attempt_timeout_ms);
        Ok(at_least_one("timeouts.attempt_timeout_ms", ms)?.map(Duration::from_millis))
    }
}

fn parse_retriable(setting: &RetriableErrorsSetting) -> Result<RetriableErrors, ConfigError> {
    const ALLOWED: &str = "\"all\" or a list of: timeout, unavailable, connection_refused, transport, \
        worker_crash, worker, python_exception, validation, circuit_open, queue_timeout, saturated, pool";
    match setting {
        RetriableErrorsSetting::Name(name) if name == "all" => Ok(RetriableErrors::All),
        RetriableErrorsSetting::Name(name) => Err(invalid(
            "retry.retriable_errors",
            format!("{name:?}"),
            ALLOWED,
        )),
        RetriableErrorsSetting::List(names) => names
            .iter()
            .map(|name| {
                RetriableErrors::kind_from_name(name)
                    .ok_or_else(|| invalid("retry.retriable_errors", format!("{name:?}"), ALLOWED))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|mut kinds| {
                kinds.dedup();
                RetriableErrors::Kinds(kinds)
            }),
    }
}

fn at_least_one<T>(key: &str, value: Option<T>) -> Result<Option<T>, ConfigError>
where
    T: Copy + PartialOrd + From<u8> + ToString,
{
    match value {
        Some(v) if v < T::from(1) => Err(invalid(key, v, "at least 1")),
        other => Ok(other),
    }
}

fn invalid(key: &str, value: impl ToString, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_string(),
        allowed: allowed.to_owned(),
    }
}
