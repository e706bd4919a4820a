//! `snakepit serve`: the configured pools as a long-lived host until SIGTERM or SIGINT, with the
//! loopback admin endpoint (`/metrics`, `/health`, `/status`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use snakepit_core::config::SnakepitConfig;
use snakepit_pool::PoolSet;
use snakepit_telemetry::metrics::PrometheusMetrics;
use snakepit_telemetry::Telemetry;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::{self, AdminState, ADMIN_TOKEN_ENV};
use crate::CliError;

/// Id of the Prometheus handler on the global bus.
const METRICS_HANDLER_ID: &str = "snakepit-serve-prometheus";

/// Options of `snakepit serve`.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Configuration file (default: the embedded configuration, the showcase adapter).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve /metrics, /health and /status on this loopback address (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
}

/// The signal that ended the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Terminate,
    Interrupt,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Stop::Terminate => "SIGTERM",
            Stop::Interrupt => "SIGINT",
        }
    }
}

/// Listens for SIGTERM and SIGINT from now on (installed before the pools start, so a signal
/// during start-up is not lost and still ends the host gracefully).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<Self, CliError> {
        let listen = |kind| {
            signal(kind).map_err(|e| CliError::infra(format!("cannot listen for signals: {e}")))
        };
        Ok(Self {
            term: listen(SignalKind::terminate())?,
            int: listen(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Terminate,
            _ = self.int.recv() => Stop::Interrupt,
        }
    }
}

/// Starts the configuration's pools, each with the interpreter the CLI picks for it.
async fn start_pools(config: &SnakepitConfig) -> Result<PoolSet, snakepit_core::Error> {
    let mut pools = config.pool_configs()?;
    crate::python::adopt_project_venvs(&mut pools);
    PoolSet::start_pools(config, pools).await
}

pub(crate) async fn run(a: ServeArgs) -> Result<(), CliError> {
    let mut signals = StopSignals::install()?;
    let config = match &a.config {
        Some(path) => SnakepitConfig::from_file(path),
        None => Ok(SnakepitConfig::embedded_default()),
    }
    .map_err(|e| CliError::usage(e.to_string()))?;
    crate::init_logging(&config)?;
    let metrics = PrometheusMetrics::new();
    let bus = Telemetry::global();
    metrics
        .attach(bus, METRICS_HANDLER_ID)
        .map_err(|e| CliError::infra(e.to_string()))?;
    #[cfg(feature = "otel")]
    let otel = start_otel()?;
    let started = Instant::now();
    let listener = match a.admin {
        Some(addr) => Some(admin::bind(addr).await?),
        None => None,
    };
    let pools = tokio::select! {
        pools = start_pools(&config) => Arc::new(pools.map_err(|e| CliError::from_core(&e))?),
        stop = signals.next() => {
            tracing::info!(signal = stop.name(), "stopped during start-up");
            bus.detach(METRICS_HANDLER_ID);
            return Ok(());
        }
    };
    let state = Arc::new(AdminState {
        pools: pools.clone(),
        metrics,
        started,
        stopping: AtomicBool::new(false),
        execute_token: std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty()),
    });
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match listener {
        Some(listener) => {
            let addr = listener
                .local_addr()
                .map_err(|e| CliError::infra(format!("admin listener has no address: {e}")))?;
            let app = admin::router(state.clone());
            let server = tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = admin_stopped.await;
                    })
                    .await
            });
            println!("admin listening on http://{addr}");
            Some(server)
        }
        None => None,
    };
    let names: Vec<&str> = pools.names().collect();
    println!("serving pools: {}", names.join(", "));
    let stop = signals.next().await;
    tracing::info!(signal = stop.name(), "shutting down");
    state.stopping.store(true, Ordering::SeqCst);
    // In-flight calls get up to graceful_shutdown_timeout_ms inside the pools' shutdown.
    pools.shutdown().await;
    let _ = stop_admin.send(());
    if let Some(server) = server {
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "admin endpoint ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "admin endpoint task failed"),
            Err(_) => tracing::warn!("admin endpoint did not stop within 5 s"),
        }
    }
    bus.detach(METRICS_HANDLER_ID);
    #[cfg(feature = "otel")]
    if let Some(otel) = otel {
        otel.shutdown();
    }
    println!("stopped ({})", stop.name());
    Ok(())
}

/// Exports call spans over OTLP when `SNAKEPIT_OTEL_ENDPOINT` is set (nothing is exported otherwise).
#[cfg(feature = "otel")]
fn start_otel() -> Result<Option<Arc<snakepit_telemetry::otel::OtelTracing>>, CliError> {
    let Some(endpoint) = std::env::var("SNAKEPIT_OTEL_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        return Ok(None);
    };
    let otel = snakepit_telemetry::otel::OtelTracing::otlp(&endpoint)
        .map_err(|e| CliError::usage(e.to_string()))?;
    otel.attach(Telemetry::global(), "snakepit-serve-otel")
        .map_err(|e| CliError::infra(e.to_string()))?;
    Ok(Some(otel))
}
