//! Script mode (the seeds' `run_as_script`): run a closure with a pool and always clean up.
//!
//! [`run_as_script`] starts a pool, waits for it (`timeout`), runs the closure, and then stops the
//! workers, bounded by `cleanup_timeout` (after which their groups are killed), whether the closure
//! returned, panicked or was interrupted. SIGINT and SIGTERM are handled: the first lets the
//! closure's in-flight calls finish while the workers get their graceful stop; a second one kills
//! the workers' process groups at once. Either way the run directory goes with the pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use snakepit_core::config::PoolConfig;
use snakepit_core::Error;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::Pool;

/// The seeds' default time to wait for the pool to become ready (15 000 ms).
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_millis(15_000);
/// The seeds' default time worker cleanup may take before it is forced (5 000 ms).
pub const DEFAULT_CLEANUP_TIMEOUT: Duration = Duration::from_millis(5_000);
/// The seeds bound cleanup by `cleanup_timeout` plus this margin before the script continues.
const CLEANUP_MARGIN: Duration = Duration::from_millis(1_000);

/// Options of [`run_as_script`] (the seeds' names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptOptions {
    /// Maximum time to wait for the pool's workers to be ready (default 15 000 ms).
    pub timeout: Duration,
    /// Time worker cleanup may take before the workers' groups are killed (default 5 000 ms).
    pub cleanup_timeout: Duration,
    /// Whether SIGINT and SIGTERM are handled (default true); without it a signal kills the process.
    pub handle_signals: bool,
}

impl Default for ScriptOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_SCRIPT_TIMEOUT,
            cleanup_timeout: DEFAULT_CLEANUP_TIMEOUT,
            handle_signals: true,
        }
    }
}

/// A termination signal the script received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// Returns the exit code a shell expects after this signal (128 + its number: 130, 143).
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }

    /// Returns the signal's name.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

/// Why [`run_as_script`] returned no value of the closure.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The pool could not start or did not become ready within `timeout`.
    #[error(transparent)]
    Pool(#[from] Error),
    /// A signal stopped the script; the workers were stopped (or killed on a second signal).
    #[error("stopped by {}; workers {}", .signal.name(), if *.forced { "killed (second signal or cleanup_timeout)" } else { "stopped gracefully" })]
    Interrupted {
        /// The first signal received.
        signal: StopSignal,
        /// Whether a second signal made the stop immediate.
        forced: bool,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// SIGINT and SIGTERM as one stream of [`StopSignal`]s.
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl std::fmt::Debug for StopSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopSignals").finish_non_exhaustive()
    }
}

impl StopSignals {
    /// Installs the handlers; from now on SIGINT and SIGTERM no longer end the process by default.
    pub fn install() -> Result<Self, std::io::Error> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) -> StopSignal {
        tokio::select! {
            _ = self.interrupt.recv() => StopSignal::Interrupt,
            _ = self.terminate.recv() => StopSignal::Terminate,
        }
    }
}

/// Runs `work` with a started, ready pool and stops the pool afterwards, whatever happens.
///
/// Returns the closure's value; [`ScriptError::Interrupted`] after SIGINT/SIGTERM (the closure
/// keeps running while the workers stop gracefully, so an in-flight call may still finish; a
/// second signal kills the workers' groups). A panic in the closure is resumed after cleanup.
///
/// ```no_run
/// use snakepit_core::{config::PoolConfig, CallOptions};
/// use snakepit_pool::script::{run_as_script, ScriptOptions};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let sum = run_as_script(PoolConfig::showcase(1), ScriptOptions::default(), |pool| async move {
///     pool.execute("add", serde_json::json!({"a": 1, "b": 2}), CallOptions::default()).await
/// })
/// .await??;
/// assert_eq!(sum.json, serde_json::json!(3));
/// # Ok(()) }
/// ```
pub async fn run_as_script<F, Fut, T>(
    config: PoolConfig,
    options: ScriptOptions,
    work: F,
) -> Result<T, ScriptError>
where
    F: FnOnce(Arc<Pool>) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut signals = match options.handle_signals {
        true => Some(StopSignals::install().map_err(ScriptError::Signals)?),
        false => None,
    };
    let pool = Arc::new(Pool::start(config).await?);
    let ready = pool.await_ready(options.timeout);
    let first = tokio::select! {
        r = ready => match r {
            Ok(()) => None,
            Err(e) => {
                stop_pool(&pool, options.cleanup_timeout, signals.as_mut()).await;
                return Err(e.into());
            }
        },
        s = next_signal(signals.as_mut()) => Some(s),
    };
    let mut task = tokio::spawn(work(pool.clone()));
    let first = match first {
        Some(s) => Some(s),
        None => tokio::select! {
            joined = &mut task => {
                stop_pool(&pool, options.cleanup_timeout, signals.as_mut()).await;
                return match joined {
                    Ok(value) => Ok(value),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => Err(Error::pool(format!("the script task ended unexpectedly: {e}")).into()),
                };
            }
            s = next_signal(signals.as_mut()) => Some(s),
        },
    };
    let signal = first.unwrap_or(StopSignal::Interrupt);
    tracing::warn!(target: "snakepit::script", signal = signal.name(), "stopping: in-flight calls get the graceful shutdown period; send the signal again to kill the workers now");
    // Graceful: the closure's calls may finish while the workers stop; a second signal forces it.
    let forced = stop_pool(&pool, options.cleanup_timeout, signals.as_mut()).await;
    task.abort();
    let _ = task.await;
    Err(ScriptError::Interrupted { signal, forced })
}

async fn next_signal(signals: Option<&mut StopSignals>) -> StopSignal {
    match signals {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Shuts the pool down within `cleanup_timeout`, killing the workers' groups when it runs over
/// or when a signal arrives meanwhile. Returns whether the stop had to be forced.
pub async fn stop_pool(
    pool: &Pool,
    cleanup_timeout: Duration,
    signals: Option<&mut StopSignals>,
) -> bool {
    let shutdown = pool.shutdown();
    tokio::pin!(shutdown);
    let forced = tokio::select! {
        r = tokio::time::timeout(cleanup_timeout, &mut shutdown) => r.is_err(),
        _ = next_signal(signals) => true,
    };
    if forced {
        let killed = pool.kill();
        tracing::warn!(target: "snakepit::script", killed = ?killed, "killed the workers' process groups");
        // The processes are gone; the shutdown only has to notice (bounded as in the seeds).
        let _ = tokio::time::timeout(CLEANUP_MARGIN, &mut shutdown).await;
    }
    forced
}
