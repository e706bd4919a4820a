//! Telemetry for snakepit-rs: the event catalog and the host's tracing setup.
//!
//! Today this crate owns the names of the events the other crates emit (as `tracing`
//! targets and event names, following the seeds' `[:snakepit, ...]` catalog) and the
//! subscriber setup used by the CLI. Planned here: Prometheus metrics, OpenTelemetry export,
//! and folding the Python workers' `StreamTelemetry` events into the host's.

/// `tracing` targets used by the snakepit crates, one per area of the seeds' catalog.
pub mod targets {
    /// Pool events: worker spawned/terminated/restarted, queue and saturation.
    pub const POOL: &str = "snakepit::pool";
    /// Heartbeat events: missed pongs, unresponsive workers.
    pub const HEARTBEAT: &str = "snakepit::heartbeat";
    /// Output lines of Python workers (stdout and stderr, drained at debug level).
    pub const PYTHON: &str = "snakepit::python";
    /// Circuit breaker events: opened, closed.
    pub const CIRCUIT_BREAKER: &str = "snakepit::circuit_breaker";
    /// Retry events: attempt, exhausted.
    pub const RETRY: &str = "snakepit::retry";
    /// GPU profiler samples.
    pub const GPU_PROFILER: &str = "snakepit::gpu_profiler";
}

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

#[cfg(feature = "subscriber")]
/// Installs a stderr `tracing` subscriber: `SNAKEPIT_LOG` (an env-filter) wins over `level`.
///
/// Returns false when a global subscriber was already set (then nothing changes).
pub fn init_tracing(level: LogLevel) -> bool {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SNAKEPIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.directive()));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
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
    }
}
