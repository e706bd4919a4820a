//! A mock worker factory for unit tests of the pool's logic: workers are in-process values
//! whose answers a test chooses, and every call is logged with the worker that served it.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::json;
use snakepit_core::config::PoolConfig;
use snakepit_core::{Chunk, ChunkStream, Error, Payload, ToolCall, WorkerId};
use snakepit_pool::{Pool, WorkerFactory, WorkerHandle};
use snakepit_worker::{ExitInfo, ExitKind, HostSignal};
use tokio::sync::watch;

/// How a mock worker answers: `(worker, call, calls made so far on all workers)`.
pub type Behaviour =
    Arc<dyn Fn(&WorkerId, &ToolCall, usize) -> Result<Payload, Error> + Send + Sync>;

/// Starts mock workers and logs `(worker, tool)` for every call they get.
#[derive(Clone)]
pub struct MockWorkers {
    behaviour: Behaviour,
    pub log: Arc<Mutex<Vec<(WorkerId, String)>>>,
}

impl MockWorkers {
    /// Workers that answer every call with `behaviour`.
    pub fn new(
        behaviour: impl Fn(&WorkerId, &ToolCall, usize) -> Result<Payload, Error>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self {
            behaviour: Arc::new(behaviour),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Workers that answer every call with its arguments.
    pub fn echo() -> Self {
        Self::new(|_, call, _| Ok(Payload::json(json!(call.args))))
    }

    /// The workers that served the calls, in order.
    pub fn served_by(&self) -> Vec<WorkerId> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(w, _)| w.clone())
            .collect()
    }

    /// Starts a ready pool of `size` mock workers; `tweak` adjusts the configuration and
    /// `build` the builder (layers).
    pub async fn pool(
        &self,
        size: usize,
        tweak: impl FnOnce(&mut PoolConfig),
        build: impl FnOnce(snakepit_pool::PoolBuilder) -> snakepit_pool::PoolBuilder,
    ) -> Pool {
        let mut config = PoolConfig::showcase(size);
        config.heartbeat.enabled = false;
        tweak(&mut config);
        let pool = build(Pool::builder(config).worker_factory(self.clone()))
            .start()
            .await
            .expect("mock pool starts");
        pool.await_ready(Duration::from_secs(10))
            .await
            .expect("mock workers are ready");
        pool
    }
}

impl WorkerFactory for MockWorkers {
    fn start(&self, id: WorkerId) -> BoxFuture<'_, Result<Arc<dyn WorkerHandle>, Error>> {
        let worker = MockWorker {
            id,
            started: Instant::now(),
            exit: watch::channel(None).0,
            factory: self.clone(),
        };
        Box::pin(async move { Ok(Arc::new(worker) as Arc<dyn WorkerHandle>) })
    }
}

/// One mock worker; killing or stopping it ends it.
pub struct MockWorker {
    id: WorkerId,
    started: Instant,
    exit: watch::Sender<Option<ExitInfo>>,
    factory: MockWorkers,
}

impl std::fmt::Debug for MockWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockWorker").field("id", &self.id).finish()
    }
}

impl MockWorker {
    fn answer(&self, call: &ToolCall) -> Result<Payload, Error> {
        let made = {
            let mut log = self.factory.log.lock().unwrap();
            log.push((self.id.clone(), call.tool.clone()));
            log.len() - 1
        };
        (self.factory.behaviour)(&self.id, call, made)
    }

    fn end(&self, how: &str, host_signal: HostSignal) {
        self.exit.send_replace(Some(exit_info(how, host_signal)));
    }
}

impl WorkerHandle for MockWorker {
    fn id(&self) -> &WorkerId {
        &self.id
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn execute(&self, call: ToolCall) -> BoxFuture<'_, Result<Payload, Error>> {
        Box::pin(async move {
            let answer = self.answer(&call);
            if call.tool == "hang" {
                std::future::pending::<()>().await;
            }
            answer
        })
    }

    fn execute_stream(&self, call: ToolCall) -> BoxFuture<'_, Result<ChunkStream, Error>> {
        Box::pin(async move {
            self.answer(&call)?;
            let chunks = (0..3).map(|i| {
                Ok(Chunk {
                    id: format!("{}-{}", call.tool, i + 1),
                    json: Some(json!(i)),
                    raw: Default::default(),
                    is_final: i == 2,
                    metadata: Default::default(),
                })
            });
            Ok(Box::pin(futures::stream::iter(chunks.collect::<Vec<_>>())) as ChunkStream)
        })
    }

    fn exited(&self) -> BoxFuture<'_, ExitInfo> {
        let mut rx = self.exit.subscribe();
        Box::pin(async move {
            loop {
                if let Some(info) = rx.borrow_and_update().clone() {
                    return info;
                }
                if rx.changed().await.is_err() {
                    return exit_info("gone", HostSignal::None);
                }
            }
        })
    }

    fn kill(&self) {
        self.end("killed", HostSignal::Kill);
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        self.end("stopped", HostSignal::Stop);
        Box::pin(async {})
    }
}

/// How a mock worker ended: no process, so no code or signal, only `how` in words.
fn exit_info(how: &str, host_signal: HostSignal) -> ExitInfo {
    ExitInfo {
        kind: ExitKind::unknown(how),
        host_signal,
    }
}
