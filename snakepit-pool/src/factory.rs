//! Where a pool's workers come from: the [`WorkerFactory`] trait (Python processes by default,
//! a mock in tests) and the [`WorkerHandle`] each started worker is supervised through.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
#[cfg(feature = "host-bridge")]
use snakepit_core::config::LaunchContract;
use snakepit_core::config::PoolConfig;
use snakepit_core::{ChunkStream, Error, Payload, SessionId, ToolCall, WorkerId};
use snakepit_worker::cleanup::{cleanup_run, CleanupOutcome};
#[cfg(feature = "host-bridge")]
use snakepit_worker::host_bridge::{HostBridge, HostSessions};
use snakepit_worker::registry::ProcessRegistry;
use snakepit_worker::{ExitInfo, RunContext, Worker, WorkerSpec};

/// Starts the workers of one pool.
///
/// The pool asks for a worker whenever it needs one (at start-up, to replace a dead one, to
/// recycle one) and builds its per-worker service around the handle it gets. The default
/// factory spawns Python processes; tests supply their own to exercise the pool's logic
/// (scheduling, breakers, retries, layers) without processes.
pub trait WorkerFactory: Send + Sync + 'static {
    /// Starts the worker `id` and returns once it is ready to serve.
    fn start(&self, id: WorkerId) -> BoxFuture<'_, Result<Arc<dyn WorkerHandle>, Error>>;

    /// Kills every worker this factory started that may still run, including those the pool
    /// no longer schedules (retiring ones), and returns their pids (the immediate stop after a
    /// second Ctrl-C). The pool also kills each member through its handle.
    fn kill_all(&self) -> Vec<u32> {
        Vec::new()
    }

    /// Ends, within `timeout`, every process of this factory's workers that still runs and
    /// reports the ones that would not die (`cleanup_on_stop`, [`crate::Pool::cleanup`]).
    fn cleanup(&self, timeout: Duration) -> BoxFuture<'_, CleanupOutcome> {
        let _ = timeout;
        Box::pin(async { CleanupOutcome::default() })
    }
}

/// One started worker, as the pool sees it: calls, its exit, and how to stop it.
pub trait WorkerHandle: Send + Sync + Debug + 'static {
    /// Returns the worker's id.
    fn id(&self) -> &WorkerId;

    /// Returns the OS pid of the worker's process, when it has one.
    fn pid(&self) -> Option<u32>;

    /// Returns how long ago the worker started.
    fn uptime(&self) -> Duration;

    /// Runs one unary call.
    fn execute(&self, call: ToolCall) -> BoxFuture<'_, Result<Payload, Error>>;

    /// Opens a streaming call.
    fn execute_stream(&self, call: ToolCall) -> BoxFuture<'_, Result<ChunkStream, Error>>;

    /// Waits until the worker has ended (crash, kill or stop) and says how.
    fn exited(&self) -> BoxFuture<'_, ExitInfo>;

    /// Kills the worker at once.
    fn kill(&self);

    /// Stops the worker gracefully and returns once it is gone.
    fn stop(&self) -> BoxFuture<'_, ()>;

    /// Tells the worker to drop session `session` (`CleanupSession`); true if it had it.
    /// The default keeps no per-session state.
    fn cleanup_session<'a>(
        &'a self,
        _session: &'a SessionId,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async { Ok(false) })
    }
}

/// The default factory: Python processes of the pool's adapter, recorded in the process
/// registry (so a later host can sweep them if this one dies) and offered the host bridge.
pub(crate) struct ProcessWorkers {
    config: PoolConfig,
    python: std::path::PathBuf,
    run: Arc<RunContext>,
    registry: Arc<ProcessRegistry>,
    #[cfg(feature = "host-bridge")]
    host_bridge: HostBridge,
}

impl ProcessWorkers {
    pub(crate) fn new(
        config: PoolConfig,
        python: std::path::PathBuf,
        run: Arc<RunContext>,
        registry: ProcessRegistry,
        #[cfg(feature = "host-bridge")] host_bridge: HostBridge,
    ) -> Self {
        Self {
            config,
            python,
            run,
            registry: Arc::new(registry),
            #[cfg(feature = "host-bridge")]
            host_bridge,
        }
    }
}

impl WorkerFactory for ProcessWorkers {
    fn kill_all(&self) -> Vec<u32> {
        self.registry.kill_all()
    }

    fn cleanup(&self, timeout: Duration) -> BoxFuture<'_, CleanupOutcome> {
        Box::pin(cleanup_run(&self.registry, &self.config.cleanup, timeout))
    }

    fn start(&self, id: WorkerId) -> BoxFuture<'_, Result<Arc<dyn WorkerHandle>, Error>> {
        Box::pin(async move {
            #[allow(unused_mut)]
            let mut spec = WorkerSpec::new(id.clone(), self.config.clone(), self.python.clone());
            #[cfg(feature = "host-bridge")]
            {
                let address = match self.config.launch_contract {
                    LaunchContract::Native => self.host_bridge.address(),
                    // The original's client reaches the host over loopback TCP only.
                    LaunchContract::Snakepit => self
                        .host_bridge
                        .tcp_address()
                        .unwrap_or(self.host_bridge.address()),
                };
                spec.host_address = Some(address.to_owned());
            }
            let worker = Worker::start(spec, self.run.clone()).await?;
            if let Err(e) = self.registry.register(id.as_str(), worker.pid()) {
                tracing::warn!(worker = %id, error = %e, "cannot record the worker in the process registry");
            }
            Ok(Arc::new(ProcessWorker {
                worker,
                registry: self.registry.clone(),
                // The original's server keeps no sessions of its own: they live on the host bridge.
                #[cfg(feature = "host-bridge")]
                host_sessions: (self.config.launch_contract == LaunchContract::Snakepit)
                    .then(|| self.host_bridge.sessions().clone()),
            }) as Arc<dyn WorkerHandle>)
        })
    }
}

/// A Python worker process, unregistered from the process registry once stopped.
#[derive(Debug)]
struct ProcessWorker {
    worker: Worker,
    registry: Arc<ProcessRegistry>,
    /// The host bridge's sessions, for a `launch_contract = "snakepit"` worker: its sessions
    /// are dropped there, since the original's server serves no `CleanupSession`.
    #[cfg(feature = "host-bridge")]
    host_sessions: Option<HostSessions>,
}

impl WorkerHandle for ProcessWorker {
    fn id(&self) -> &WorkerId {
        self.worker.id()
    }

    fn pid(&self) -> Option<u32> {
        Some(self.worker.pid())
    }

    fn uptime(&self) -> Duration {
        self.worker.uptime()
    }

    fn execute(&self, call: ToolCall) -> BoxFuture<'_, Result<Payload, Error>> {
        Box::pin(self.worker.execute(call))
    }

    fn execute_stream(&self, call: ToolCall) -> BoxFuture<'_, Result<ChunkStream, Error>> {
        Box::pin(self.worker.execute_stream(call))
    }

    fn exited(&self) -> BoxFuture<'_, ExitInfo> {
        Box::pin(async move {
            let exit = self.worker.exited().await;
            // Every ended worker leaves the registry, crashed ones included (the pool's
            // monitor awaits this for each worker).
            let _ = self.registry.unregister(self.worker.id().as_str());
            exit
        })
    }

    fn kill(&self) {
        self.worker.kill();
    }

    fn cleanup_session<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<bool, Error>> {
        #[cfg(feature = "host-bridge")]
        if let Some(sessions) = &self.host_sessions {
            let had = sessions.cleanup(session.as_str());
            return Box::pin(async move { Ok(had) });
        }
        Box::pin(self.worker.cleanup_session(session))
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.worker.stop().await;
            let _ = self.registry.unregister(self.worker.id().as_str());
        })
    }
}
