//! The `crash_barrier` table: crash-loop limits, idempotent retry and device taint.
//!
//! The seeds document two schemas for it: `{enabled, max_restarts: 5, window_seconds: 60}`
//! (configuration guide) and `{enabled, retry: :idempotent, max_retries: 1, taint_ms: 5000}`
//! (production guide). Both are accepted, in one table, with those defaults.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// Which calls the crash barrier retries after their worker died under them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrashRetry {
    /// Only calls the caller marked idempotent (the seeds' `retry: :idempotent`, the default).
    #[default]
    Idempotent,
    /// None.
    Never,
}

/// `crash_barrier = { enabled, max_restarts, window_seconds, retry, max_retries, taint_ms }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CrashBarrierTable {
    /// Whether the barrier applies (default true).
    pub enabled: Option<bool>,
    /// Crashes of one worker slot tolerated within the window (default 5).
    pub max_restarts: Option<u32>,
    /// The window, in seconds (default 60).
    pub window_seconds: Option<u64>,
    /// `"idempotent"` (default) or `"never"`.
    pub retry: Option<CrashRetry>,
    /// Retries of a call whose worker died under it (default 1).
    pub max_retries: Option<u32>,
    /// How long a crashed worker's GPU device is avoided, in ms (default 5 000).
    pub taint_ms: Option<u64>,
}

/// The crash barrier settings of a pool, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashBarrierSettings {
    /// Whether the barrier applies.
    pub enabled: bool,
    /// Crashes of one worker slot tolerated within `window`; one more stops the slot.
    pub max_restarts: u32,
    /// The window crashes are counted in.
    pub window: Duration,
    /// Which calls are retried on another worker after a crash.
    pub retry: CrashRetry,
    /// Retries per call after crashes.
    pub max_retries: u32,
    /// How long a crashed worker's device is avoided.
    pub taint: Duration,
}

impl Default for CrashBarrierSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_restarts: 5,
            window: Duration::from_secs(60),
            retry: CrashRetry::Idempotent,
            max_retries: 1,
            taint: Duration::from_millis(5_000),
        }
    }
}

impl CrashBarrierTable {
    /// Overlays `local`'s keys on this (global) table.
    pub(crate) fn merged(&self, local: Option<&CrashBarrierTable>) -> CrashBarrierTable {
        let Some(l) = local else {
            return self.clone();
        };
        CrashBarrierTable {
            enabled: l.enabled.or(self.enabled),
            max_restarts: l.max_restarts.or(self.max_restarts),
            window_seconds: l.window_seconds.or(self.window_seconds),
            retry: l.retry.or(self.retry),
            max_retries: l.max_retries.or(self.max_retries),
            taint_ms: l.taint_ms.or(self.taint_ms),
        }
    }

    /// Fills in the defaults and checks the values; `path` prefixes key names in errors.
    pub fn settings(&self, path: &str) -> Result<CrashBarrierSettings, ConfigError> {
        let d = CrashBarrierSettings::default();
        if self.window_seconds == Some(0) {
            return Err(ConfigError::invalid(
                format!("{path}crash_barrier.window_seconds"),
                0,
                "a positive number of seconds; the default is 60",
            ));
        }
        Ok(CrashBarrierSettings {
            enabled: self.enabled.unwrap_or(d.enabled),
            max_restarts: self.max_restarts.unwrap_or(d.max_restarts),
            window: self.window_seconds.map_or(d.window, Duration::from_secs),
            retry: self.retry.unwrap_or(d.retry),
            max_retries: self.max_retries.unwrap_or(d.max_retries),
            taint: self.taint_ms.map_or(d.taint, Duration::from_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::SnakepitConfig;

    #[test]
    fn both_seed_schemas_parse_into_one_table_with_the_seeds_defaults() {
        let cfg = SnakepitConfig::from_toml_str(
            "crash_barrier = { enabled = true, max_restarts = 10, window_seconds = 300 }\n\
             [[pools]]\nname = \"a\"\n\
             crash_barrier = { retry = \"never\", max_retries = 2, taint_ms = 100 }\n\
             [[pools]]\nname = \"b\"\n",
        )
        .unwrap();
        let pools = cfg.pool_configs().unwrap();
        let a = pools[0].crash_barrier;
        assert_eq!((a.max_restarts, a.window), (10, Duration::from_secs(300)));
        assert_eq!((a.retry, a.max_retries), (CrashRetry::Never, 2));
        assert_eq!(a.taint, Duration::from_millis(100));
        let b = pools[1].crash_barrier;
        assert_eq!(b.retry, CrashRetry::Idempotent);
        assert_eq!((b.max_retries, b.taint), (1, Duration::from_millis(5000)));
        let d = CrashBarrierSettings::default();
        assert!(d.enabled);
        assert_eq!((d.max_restarts, d.window), (5, Duration::from_secs(60)));
    }

    #[test]
    fn a_zero_window_is_rejected_naming_the_key() {
        let cfg = SnakepitConfig::from_toml_str(
            "[[pools]]\nname = \"a\"\ncrash_barrier = { window_seconds = 0 }\n",
        )
        .unwrap();
        let err = cfg.pool_configs().unwrap_err().to_string();
        assert!(
            err.contains("pools[a].crash_barrier.window_seconds"),
            "{err}"
        );
        let bad = SnakepitConfig::from_toml_str("crash_barrier = { retry = \"always\" }");
        assert!(bad.unwrap_err().to_string().contains("idempotent"));
    }
}
