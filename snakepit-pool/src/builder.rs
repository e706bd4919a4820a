//! The pool builder: host tools, user layers around each worker's service, a worker factory.

use std::sync::Arc;

use snakepit_core::config::PoolConfig;
use snakepit_core::{BoxError, Error};
#[cfg(feature = "host-bridge")]
use snakepit_worker::host_bridge::HostTools;
use tower::{Layer, Service, ServiceExt};

use crate::factory::WorkerFactory;
use crate::service::{WorkerCall, WorkerReply, WorkerService};
use crate::Pool;

/// A user layer with its type erased: wraps one worker's boxed service.
pub(crate) type UserLayer = Arc<dyn Fn(WorkerService) -> WorkerService + Send + Sync>;

/// Configures and starts a [`Pool`]; from [`Pool::builder`].
///
/// ```no_run
/// use snakepit_core::config::PoolConfig;
/// use snakepit_pool::Pool;
/// use tower::limit::ConcurrencyLimitLayer;
///
/// # async fn demo() -> Result<(), snakepit_core::Error> {
/// let pool = Pool::builder(PoolConfig::showcase(2))
///     .layer(ConcurrencyLimitLayer::new(1)) // around each worker, next to its breaker
///     .start()
///     .await?;
/// # pool.shutdown().await; Ok(()) }
/// ```
#[must_use = "a builder does nothing until `start` is called"]
pub struct PoolBuilder {
    pub(crate) config: PoolConfig,
    #[cfg(feature = "host-bridge")]
    pub(crate) host_tools: HostTools,
    pub(crate) layers: Vec<UserLayer>,
    pub(crate) factory: Option<Box<dyn WorkerFactory>>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("pool", &self.config.name)
            .field("layers", &self.layers.len())
            .field("custom_factory", &self.factory.is_some())
            .finish()
    }
}

impl PoolBuilder {
    pub(crate) fn new(config: PoolConfig) -> Self {
        Self {
            config,
            #[cfg(feature = "host-bridge")]
            host_tools: HostTools::default(),
            layers: Vec::new(),
            factory: None,
        }
    }

    #[cfg(feature = "host-bridge")]
    /// Offers `tools` to Python: adapters call them with
    /// `session_context.call_elixir_tool(name, {...})` over the run's private host socket.
    pub fn host_tools(mut self, tools: HostTools) -> Self {
        self.host_tools = tools;
        self
    }

    /// Adds a tower layer around each worker's service, outside its circuit breaker and
    /// per-attempt timeout: it sees every attempt on that worker, unary and streaming (a
    /// stream's [`WorkerReply::Stream`] is returned when the stream opens).
    ///
    /// Layers added first are outermost. The layer's errors may be any `BoxError`
    /// (tower's `Timeout`, say); they reach the caller as `snakepit_core::Error`.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<WorkerService> + Send + Sync + 'static,
        L::Service: Service<WorkerCall, Response = WorkerReply> + Clone + Send + Sync + 'static,
        <L::Service as Service<WorkerCall>>::Error: Into<BoxError>,
        <L::Service as Service<WorkerCall>>::Future: Send + 'static,
    {
        self.layers.push(Arc::new(move |inner| {
            WorkerService::new(layer.layer(inner).map_err(|e| Error::from_box(e.into())))
        }));
        self
    }

    /// Starts workers with `factory` instead of spawning Python processes (tests use a mock
    /// worker this way). No interpreter is looked up and no host bridge is started.
    pub fn worker_factory(mut self, factory: impl WorkerFactory) -> Self {
        self.factory = Some(Box::new(factory));
        self
    }

    /// Validates the configuration and starts the pool; see [`Pool::start`].
    pub async fn start(self) -> Result<Pool, Error> {
        Pool::start_from(self).await
    }
}
