//! The retry budget: tower's `TpsBudget`, with options checked up front instead of asserted.

use std::time::Duration;

use snakepit_core::config::ConfigError;
use tower::retry::budget::TpsBudget;

/// How many retries a stack may make: a share of recent calls plus a small floor.
///
/// Every call deposits into the budget and every retry withdraws from it, so a failing
/// backend gets at most `retry_percent` extra load (plus `min_per_sec`), never a retry storm.
/// One budget is shared by every service a [`RetryLayer`](super::RetryLayer) wraps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    ttl: Duration,
    min_per_sec: u32,
    retry_percent: f32,
}

impl Default for RetryBudget {
    /// 10 s window, 10 retries a second always allowed, plus 20 % of calls.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            min_per_sec: 10,
            retry_percent: 0.2,
        }
    }
}

impl RetryBudget {
    /// Creates a budget remembering calls for `ttl` (1 to 60 s), always allowing `min_per_sec`
    /// retries a second, plus `retry_percent` (0 to 1000, a fraction: 0.2 = 20 %) of the calls.
    pub fn new(ttl: Duration, min_per_sec: u32, retry_percent: f32) -> Result<Self, ConfigError> {
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&ttl) {
            return Err(invalid(
                "retry.budget_ttl_ms",
                ttl.as_millis(),
                "1000 to 60000",
            ));
        }
        if min_per_sec >= i32::MAX as u32 {
            return Err(invalid(
                "retry.budget_min_per_sec",
                min_per_sec,
                "below 2147483647",
            ));
        }
        if !(0.0..=1000.0).contains(&retry_percent) {
            return Err(invalid(
                "retry.budget_retry_percent",
                retry_percent,
                "a fraction of calls from 0.0 to 1000.0 (0.2 = 20 %)",
            ));
        }
        Ok(Self {
            ttl,
            min_per_sec,
            retry_percent,
        })
    }

    /// Returns the window calls are remembered for.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Returns the retries a second always allowed.
    pub fn min_per_sec(&self) -> u32 {
        self.min_per_sec
    }

    /// Returns the share of calls that may be retried.
    pub fn retry_percent(&self) -> f32 {
        self.retry_percent
    }

    /// Builds the budget itself; the options were checked, so tower's asserts hold.
    pub(crate) fn build(&self) -> TpsBudget {
        TpsBudget::new(self.ttl, self.min_per_sec, self.retry_percent)
    }
}

fn invalid(key: &str, value: impl ToString, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_string(),
        allowed: allowed.to_owned(),
    }
}
