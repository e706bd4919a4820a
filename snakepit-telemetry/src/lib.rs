//! Telemetry for snakepit-rs: the seeds' event catalog, an event bus, Python events folded into
//! the host's, the host log, and (behind features) Prometheus metrics and OpenTelemetry.
//!
//! Crates emit catalog events with one call:
//!
//! ```
//! use snakepit_telemetry::{emit, events, Telemetry};
//!
//! Telemetry::global()
//!     .attach("doc", "snakepit.pool.*", |e| println!("{} {:?}", e.name(), e.meta("pool_name")))
//!     .unwrap();
//! emit(&events::POOL_QUEUE_ENQUEUED, &[("queue_depth", 1u64.into())], &[("pool_name", "default")]);
//! Telemetry::global().detach("doc");
//! ```
//!
//! Handlers attach by name or prefix ([`Telemetry::attach`], [`Telemetry::attach_many`]) and
//! detach by id. With no handler for an event, emitting it costs one atomic load.
//! Features: `subscriber` (default: `init_logging`, `layer::CatalogLayer`), `prometheus`
//! ([`metrics::PrometheusMetrics`]), `otel` (`otel::OtelTracing`).

mod bus;
pub mod catalog;
pub mod control;
pub mod correlation;
mod event;
#[cfg(feature = "subscriber")]
pub mod layer;
pub mod logging;
#[cfg(feature = "prometheus")]
pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
pub mod python;
pub mod span;

pub use bus::{emit, AttachError, Telemetry, TraceContextFn};
pub use catalog::{events, EventDef, CATALOG};
pub use event::{Event, Measurement, OwnedEvent};
pub use logging::{LogLevel, LogSettings, Redactor};

/// `tracing` targets used by the snakepit crates, one per area of the seeds' catalog.
pub mod targets {
    /// Pool events: worker spawned/terminated/restarted, queue and saturation.
    pub const POOL: &str = "snakepit::pool";
    /// Heartbeat events: missed pongs, unresponsive workers.
    pub const HEARTBEAT: &str = "snakepit::heartbeat";
    /// Output lines of Python workers (stdout and stderr, secrets redacted).
    pub const PYTHON: &str = "snakepit::python";
    /// Circuit breaker events: opened, closed.
    pub const CIRCUIT_BREAKER: &str = "snakepit::circuit_breaker";
    /// Retry events: attempt, exhausted.
    pub const RETRY: &str = "snakepit::retry";
    /// GPU profiler samples.
    pub const GPU_PROFILER: &str = "snakepit::gpu_profiler";
    /// The telemetry machinery itself (stream consumers, handlers).
    pub const TELEMETRY: &str = "snakepit::telemetry";
}

#[cfg(feature = "subscriber")]
/// Installs a stderr `tracing` subscriber at `level`; `SNAKEPIT_LOG` (an env-filter) wins.
///
/// Returns false when a global subscriber was already set (then nothing changes).
pub fn init_tracing(level: LogLevel) -> bool {
    init_logging(&LogSettings {
        level,
        ..LogSettings::default()
    })
}

#[cfg(feature = "subscriber")]
/// Installs the host's subscriber: stderr lines filtered by `settings` (or `SNAKEPIT_LOG`),
/// and a [`layer::CatalogLayer`] that maps other crates' `tracing` events onto the global bus.
///
/// Returns false when a global subscriber was already set (then nothing changes).
pub fn init_logging(settings: &LogSettings) -> bool {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_from_env("SNAKEPIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(settings.directives()));
    let catalog = layer::CatalogLayer::new(Telemetry::global()).with_filter(
        tracing_subscriber::filter::filter_fn(|m| m.target().starts_with("snakepit::")),
    );
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                // Colours only for a person at a terminal, never into a log file or a pipe.
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(catalog)
        .try_init()
        .is_ok()
}
