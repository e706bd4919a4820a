//! The host's log: the seeds' `log_level` (default error) and `log_categories`, written to
//! stderr through `tracing`, with secrets redacted from Python output.

use std::borrow::Cow;

use snakepit_core::config::LogCategories;

/// The host log levels of the seeds (`log_level`: debug, info, warning, error, none; default error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Lifecycle messages.
    Info,
    /// Problems the host recovered from.
    Warning,
    /// Failures only (the default since Snakepit 0.8.1).
    #[default]
    Error,
    /// Nothing.
    None,
}

impl LogLevel {
    /// Parses a seed log level name; returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(Self::Debug),
            "info" => Some(Self::Info),
            "warning" | "warn" => Some(Self::Warning),
            "error" => Some(Self::Error),
            "none" | "off" => Some(Self::None),
            _ => None,
        }
    }

    /// Returns the `tracing` filter directive of this level.
    pub fn directive(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warn",
            Self::Error => "error",
            Self::None => "off",
        }
    }
}

/// The seeds' log categories and the `tracing` targets each one covers.
pub const CATEGORIES: &[(&str, &[&str])] = &[
    ("lifecycle", &["snakepit_pool::lifecycle"]),
    (
        "pool",
        &[
            "snakepit::pool",
            "snakepit_pool",
            "snakepit::circuit_breaker",
            "snakepit::retry",
            "snakepit_resilience",
        ],
    ),
    (
        "grpc",
        &["snakepit_worker::client", "snakepit_worker::wire"],
    ),
    ("bridge", &["snakepit_worker::host_bridge"]),
    (
        "worker",
        &[
            "snakepit::worker",
            "snakepit::python",
            "snakepit::heartbeat",
            "snakepit_worker",
        ],
    ),
    (
        "startup",
        &["snakepit::startup", "snakepit_worker::python_env"],
    ),
    ("shutdown", &["snakepit::shutdown"]),
    (
        "telemetry",
        &[
            "snakepit::telemetry",
            "snakepit_telemetry",
            "snakepit::gpu_profiler",
            "snakepit_hardware",
        ],
    ),
    ("general", &["snakepit", "snakepit_cli", "snakepit_core"]),
];

/// A bad `log_level` or `log_categories` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogConfigError {
    /// The level is not one of the seeds' names.
    #[error("{key} = '{value}' is not a log level (use debug, info, warning, error or none)")]
    Level {
        /// The key that held it.
        key: String,
        /// The value given.
        value: String,
    },
    /// The category is unknown.
    #[error("log_categories names unknown category '{0}' (known: lifecycle, pool, grpc, bridge, worker, startup, shutdown, telemetry, general)")]
    Category(String),
}

/// What the host logs: a level and per-category overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSettings {
    /// The level of everything not overridden.
    pub level: LogLevel,
    /// Per-category levels; with the list form every other category is off.
    pub categories: Vec<(&'static str, LogLevel)>,
    /// Whether only the listed categories log (the list form of `log_categories`).
    pub only_listed: bool,
}

impl LogSettings {
    /// Builds the settings from the configuration's `log_level` and `log_categories`.
    pub fn from_config(
        level: Option<&str>,
        categories: Option<&LogCategories>,
    ) -> Result<Self, LogConfigError> {
        let level = match level {
            Some(l) => LogLevel::parse(l).ok_or_else(|| LogConfigError::Level {
                key: "log_level".into(),
                value: l.to_owned(),
            })?,
            None => LogLevel::default(),
        };
        let mut out = Self {
            level,
            ..Self::default()
        };
        match categories {
            None => {}
            Some(LogCategories::List(names)) => {
                out.only_listed = true;
                for n in names {
                    out.categories.push((category(n)?, level));
                }
            }
            Some(LogCategories::Levels(map)) => {
                for (n, l) in map {
                    let lvl = LogLevel::parse(l).ok_or_else(|| LogConfigError::Level {
                        key: format!("log_categories.{n}"),
                        value: l.clone(),
                    })?;
                    out.categories.push((category(n)?, lvl));
                }
            }
        }
        Ok(out)
    }

    /// Returns the `tracing` env-filter directives of these settings.
    pub fn directives(&self) -> String {
        let base = if self.only_listed {
            "off"
        } else {
            self.level.directive()
        };
        let mut out = vec![base.to_owned()];
        for (name, lvl) in &self.categories {
            let targets = CATEGORIES
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&[][..], |(_, t)| *t);
            for t in targets {
                out.push(format!("{t}={}", lvl.directive()));
            }
        }
        out.join(",")
    }
}

fn category(name: &str) -> Result<&'static str, LogConfigError> {
    CATEGORIES
        .iter()
        .map(|(n, _)| *n)
        .find(|n| n.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| LogConfigError::Category(name.to_owned()))
}

/// Replaces secret values in text written by a worker with `[REDACTED]`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

/// Secrets shorter than this are not redacted (they would mangle ordinary words).
const MIN_SECRET_LEN: usize = 4;

/// Returns whether an environment variable named `name` holds a secret (`*KEY*`, `*TOKEN*`,
/// `*SECRET*`, `*PASSWORD*`, any case).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|w| upper.contains(w))
}

impl Redactor {
    /// Returns a redactor of the values of the secret-named variables among `env`, plus `extra`.
    pub fn from_env<'a>(
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut secrets: Vec<String> = env
            .into_iter()
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v)
            .chain(extra)
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .map(str::to_owned)
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// Returns `line` with every secret replaced.
    pub fn redact<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(line);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), "[REDACTED]"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn seed_log_levels_parse_and_default_to_error() {
        assert_eq!(LogLevel::default(), LogLevel::Error);
        assert_eq!(LogLevel::parse("WARNING"), Some(LogLevel::Warning));
        assert_eq!(
            LogLevel::parse("none").map(LogLevel::directive),
            Some("off")
        );
        assert_eq!(LogLevel::parse("loud"), None);
        assert_eq!(LogSettings::default().directives(), "error");
    }

    #[test]
    fn categories_become_target_directives_in_both_forms() {
        let list = LogCategories::List(vec!["pool".into()]);
        let s = LogSettings::from_config(Some("info"), Some(&list)).unwrap();
        let d = s.directives();
        assert!(d.starts_with("off,"), "{d}");
        assert!(d.contains("snakepit::pool=info"), "{d}");
        let map = LogCategories::Levels(BTreeMap::from([("worker".into(), "debug".into())]));
        let d = LogSettings::from_config(None, Some(&map))
            .unwrap()
            .directives();
        assert!(d.starts_with("error,"), "{d}");
        assert!(d.contains("snakepit::python=debug"), "{d}");
    }

    #[test]
    fn bad_levels_and_categories_are_named() {
        let err = LogSettings::from_config(Some("loud"), None).unwrap_err();
        assert!(err.to_string().contains("log_level = 'loud'"), "{err}");
        let list = LogCategories::List(vec!["nope".into()]);
        let err = LogSettings::from_config(None, Some(&list)).unwrap_err();
        assert_eq!(err, LogConfigError::Category("nope".into()));
        let map = LogCategories::Levels(BTreeMap::from([("pool".into(), "x".into())]));
        let err = LogSettings::from_config(None, Some(&map)).unwrap_err();
        assert!(err.to_string().contains("log_categories.pool"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_by_variable_name() {
        let env = [
            ("OPENAI_API_KEY", "sk-abcdef123"),
            ("DB_PASSWORD", "hunter22"),
            ("HOME", "/home/me"),
            ("SHORT_TOKEN", "ab"),
        ];
        let r = Redactor::from_env(env, ["tok-0123456789"]);
        let line = "key=sk-abcdef123 pw=hunter22 home=/home/me run=tok-0123456789 ab";
        assert_eq!(
            r.redact(line),
            "key=[REDACTED] pw=[REDACTED] home=/home/me run=[REDACTED] ab"
        );
        assert!(matches!(r.redact("clean"), Cow::Borrowed(_)));
        assert!(is_secret_name("github_token"));
        assert!(!is_secret_name("PATH"));
    }
}
