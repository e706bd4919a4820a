//! The `session_store` table: session TTL, sweep interval, per-pool bound and affinity mode.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The seeds' default session TTL (`default_ttl`, 3 600 s).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(3_600);
/// The seeds' default sweep interval of expired sessions (`cleanup_interval`, 60 000 ms).
pub const DEFAULT_SESSION_CLEANUP_INTERVAL: Duration = Duration::from_millis(60_000);
/// Our default bound on sessions per pool; the seeds have quotas but name no default.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// What a session's call does when the session's worker is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionAffinity {
    /// Wait for the session's own worker (the seeds' behaviour and the default).
    #[default]
    Strict,
    /// Take another free worker rather than wait (and bind the session to it).
    Prefer,
}

/// `session_store = { default_ttl = 3600, cleanup_interval = 60000, max_sessions, affinity }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionStoreTable {
    /// Seconds a session lives after its last use (default 3 600).
    pub default_ttl: Option<u64>,
    /// Milliseconds between sweeps of expired sessions (default 60 000).
    pub cleanup_interval: Option<u64>,
    /// Most sessions a pool holds at once (default 100 000).
    pub max_sessions: Option<usize>,
    /// `"strict"` (default) or `"prefer"`: see [`SessionAffinity`].
    pub affinity: Option<SessionAffinity>,
}

/// The session settings of a pool, defaults filled in and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Time a session lives after its last use.
    pub default_ttl: Duration,
    /// Time between sweeps of expired sessions.
    pub cleanup_interval: Duration,
    /// Most sessions a pool holds at once.
    pub max_sessions: usize,
    /// Affinity of sessions created without their own.
    pub affinity: SessionAffinity,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            default_ttl: DEFAULT_SESSION_TTL,
            cleanup_interval: DEFAULT_SESSION_CLEANUP_INTERVAL,
            max_sessions: DEFAULT_MAX_SESSIONS,
            affinity: SessionAffinity::Strict,
        }
    }
}

impl SessionStoreTable {
    /// Overlays `local`'s keys on this (global) table.
    pub(crate) fn merged(&self, local: Option<&SessionStoreTable>) -> SessionStoreTable {
        let Some(l) = local else {
            return self.clone();
        };
        SessionStoreTable {
            default_ttl: l.default_ttl.or(self.default_ttl),
            cleanup_interval: l.cleanup_interval.or(self.cleanup_interval),
            max_sessions: l.max_sessions.or(self.max_sessions),
            affinity: l.affinity.or(self.affinity),
        }
    }

    /// Fills in the defaults and checks the values; `path` prefixes key names in errors.
    pub fn settings(&self, path: &str) -> Result<SessionSettings, ConfigError> {
        let d = SessionSettings::default();
        let positive = |key: &str, v: Option<u64>, what: &str| match v {
            Some(0) => Err(ConfigError::invalid(
                format!("{path}session_store.{key}"),
                0,
                what.to_owned(),
            )),
            _ => Ok(v),
        };
        let ttl = positive(
            "default_ttl",
            self.default_ttl,
            "a positive number of seconds; the default is 3600",
        )?;
        let interval = positive(
            "cleanup_interval",
            self.cleanup_interval,
            "a positive number of milliseconds; the default is 60000",
        )?;
        if self.max_sessions == Some(0) {
            return Err(ConfigError::invalid(
                format!("{path}session_store.max_sessions"),
                0,
                "a positive number of sessions; the default is 100000",
            ));
        }
        Ok(SessionSettings {
            default_ttl: ttl.map_or(d.default_ttl, Duration::from_secs),
            cleanup_interval: interval.map_or(d.cleanup_interval, Duration::from_millis),
            max_sessions: self.max_sessions.unwrap_or(d.max_sessions),
            affinity: self.affinity.unwrap_or(d.affinity),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::SnakepitConfig;

    #[test]
    fn defaults_are_the_seeds_and_pools_override_the_global_table() {
        let d = SessionSettings::default();
        assert_eq!(d.default_ttl, Duration::from_secs(3600));
        assert_eq!(d.cleanup_interval, Duration::from_millis(60_000));
        assert_eq!(d.affinity, SessionAffinity::Strict);
        let cfg = SnakepitConfig::from_toml_str(
            "session_store = { default_ttl = 10, max_sessions = 5 }\n\
             [[pools]]\nname = \"a\"\nsession_store = { max_sessions = 7, affinity = \"prefer\" }\n",
        )
        .unwrap();
        let s = cfg.pool_configs().unwrap()[0].sessions;
        assert_eq!(s.default_ttl, Duration::from_secs(10));
        assert_eq!(s.max_sessions, 7);
        assert_eq!(s.affinity, SessionAffinity::Prefer);
    }

    #[test]
    fn zero_values_are_rejected_naming_the_key() {
        for (key, text) in [
            ("default_ttl", "session_store = { default_ttl = 0 }"),
            (
                "cleanup_interval",
                "session_store = { cleanup_interval = 0 }",
            ),
            ("max_sessions", "session_store = { max_sessions = 0 }"),
        ] {
            let err = SnakepitConfig::from_toml_str(text)
                .unwrap()
                .pool_configs()
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("session_store.{key}")), "{err}");
        }
    }
}
