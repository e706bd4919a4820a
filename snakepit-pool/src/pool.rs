//! The pool: concurrent batched start-up, execution through the scheduler, supervision, shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use serde_json::Value;
use snakepit_core::config::{LaunchContract, PoolConfig, WorkerProfile};
use snakepit_core::{CallOptions, ChunkStream, Error, Payload, RunId, ToolCall, WorkerId};
use snakepit_resilience::ResilienceStack;
#[cfg(feature = "host-bridge")]
use snakepit_worker::host_bridge::{HostBridge, HostTools};
use snakepit_worker::registry::{default_registry_dir, sweep_orphans, ProcessRegistry};
use snakepit_worker::RunContext;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::{Service, ServiceExt};

use crate::builder::{PoolBuilder, UserLayer};
use crate::crash_barrier::{CrashBarrier, Verdict};
use crate::crash_handling::CrashBarrierStats;
use crate::factory::{ProcessWorkers, WorkerFactory};
use crate::lifecycle::PoolWorker;
use crate::scheduler::{Acquire, Scheduler};
use crate::service::{Checkout, WorkerCall, WorkerReply, WorkerService};
use crate::session_store::SessionStore;
use crate::stats::{Counters, PoolStats, WorkerInfo};
use crate::telemetry;

/// Longest pause between attempts to replace a worker that keeps failing to start.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct Inner {
    pub(crate) config: PoolConfig,
    run: Arc<RunContext>,
    pub(crate) factory: Box<dyn WorkerFactory>,
    #[cfg(feature = "host-bridge")]
    host_tools: HostTools,
    /// The worker-level half of the resilience stack (breaker, attempt timeout).
    resilience: ResilienceStack,
    layers: Vec<UserLayer>,
    pub(crate) scheduler: Mutex<Scheduler<Arc<PoolWorker>>>,
    pub(crate) counters: Counters,
    /// The pool's sessions (TTL, bound, affinity), swept by a background task.
    pub(crate) sessions: Mutex<SessionStore>,
    /// Worker slots, crash history and device taints.
    pub(crate) barrier: Mutex<CrashBarrier>,
    /// The crash that stopped the last slot, for error messages.
    pub(crate) last_crash: Mutex<Option<String>>,
    shutting_down: AtomicBool,
    /// Set by [`Pool::kill`]: no replacements, no new calls (shutdown still drains).
    killed: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The last worker start-up error, for error messages.
    last_start_error: Mutex<Option<String>>,
    initial_round_done: watch::Sender<bool>,
    ready_workers: watch::Sender<usize>,
    next_index: AtomicU64,
}

/// A pool of Python workers running one adapter.
///
/// Every call goes through one tower stack: the overall deadline and retry, the scheduler's
/// checkout (which skips workers whose breaker is open and, on a retry, those the call already
/// failed on), then the chosen worker's service (user layers, breaker, attempt timeout). The
/// pool is itself a `tower::Service<ToolCall>`, so it can be wrapped with `ServiceBuilder`.
///
/// Dropping a pool kills its workers; call [`Pool::shutdown`] to stop them gracefully.
pub struct Pool {
    pub(crate) inner: Arc<Inner>,
    /// The call-level stack (deadline, retry) around the checkout.
    call: WorkerService,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.config.name)
            .field("run_id", self.inner.run.run_id())
            .finish()
    }
}

/// A worker lent to one call; its capacity returns to the pool when dropped.
pub(crate) struct Lease {
    inner: Arc<Inner>,
    pub(crate) id: WorkerId,
    pub(crate) worker: Arc<PoolWorker>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.worker.call_finished();
        if let Ok(mut s) = self.inner.scheduler.lock() {
            s.release(&self.id);
        }
    }
}

impl Lease {
    fn new(inner: Arc<Inner>, (id, worker): (WorkerId, Arc<PoolWorker>)) -> Self {
        worker.call_started();
        Self { inner, id, worker }
    }

    /// Counts a successful request toward the worker's `worker_max_requests`.
    pub(crate) fn succeeded(&self) {
        self.inner.request_succeeded(&self.id, &self.worker);
    }

    /// Kills a worker whose call overran its timeout (process profile): its state is unknown,
    /// so it is replaced rather than trusted with the next call.
    pub(crate) fn retire_after_timeout(&self) {
        if self.inner.config.worker_profile == WorkerProfile::Process {
            tracing::warn!(worker = %self.id, "call timed out; replacing the worker");
            self.evict();
            self.worker.kill();
        }
    }

    /// Takes the worker out of scheduling at once (it crashed or is being killed), so no
    /// other call is handed a dead worker before its monitor notices the exit.
    pub(crate) fn evict(&self) {
        self.inner.evict(&self.id);
    }
}

impl Pool {
    /// Returns a builder for a pool with user layers, host tools or a worker factory.
    pub fn builder(config: PoolConfig) -> PoolBuilder {
        PoolBuilder::new(config)
    }

    /// Validates the configuration and starts the pool's workers in the background.
    ///
    /// Workers start concurrently in batches of `startup_batch_size`, `startup_batch_delay_ms`
    /// apart. Calls made before workers are ready wait in the queue; use [`Pool::await_ready`]
    /// to wait for all of them. The interpreter is resolved before anything starts:
    /// `SNAKEPIT_PYTHON`, `python_executable`, `python_runtime` and `python_packages.env_dir`,
    /// else snakepit's own environment (built on first use); the current directory is never
    /// searched (`snakepit_worker::python_env`).
    pub async fn start(config: PoolConfig) -> Result<Self, Error> {
        Self::builder(config).start().await
    }

    #[cfg(feature = "host-bridge")]
    /// Like [`Pool::start`], offering `host_tools` to Python: adapters call them with
    /// `session_context.call_elixir_tool(name, {...})` over the run's private host socket.
    pub async fn start_with_host_tools(
        config: PoolConfig,
        host_tools: HostTools,
    ) -> Result<Self, Error> {
        Self::builder(config).host_tools(host_tools).start().await
    }

    pub(crate) async fn start_from(builder: PoolBuilder) -> Result<Self, Error> {
        let PoolBuilder {
            config,
            #[cfg(feature = "host-bridge")]
            host_tools,
            layers,
            factory,
        } = builder;
        config.validate()?;
        let stack = crate::resilience::stack_for(&config)?;
        let run = RunContext::new()?;
        let factory = match factory {
            Some(factory) => factory,
            None => Box::new(
                process_factory(
                    &config,
                    &run,
                    #[cfg(feature = "host-bridge")]
                    host_tools.clone(),
                )
                .await?,
            ),
        };
        let inner = Arc::new(Inner {
            scheduler: Mutex::new(Scheduler::new(config.max_queue_size)),
            counters: Counters::default(),
            sessions: Mutex::new(SessionStore::new(&config.name, config.sessions)),
            barrier: Mutex::new(CrashBarrier::new(config.crash_barrier)),
            last_crash: Mutex::new(None),
            shutting_down: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            last_start_error: Mutex::new(None),
            initial_round_done: watch::channel(false).0,
            ready_workers: watch::channel(0).0,
            next_index: AtomicU64::new(1),
            run,
            factory,
            #[cfg(feature = "host-bridge")]
            host_tools,
            resilience: stack.clone(),
            layers,
            config,
        });
        let call = WorkerService::new(
            stack
                .build_call(
                    Some(&inner.config.name),
                    Checkout {
                        inner: inner.clone(),
                    },
                )
                .map_err(Error::from_box),
        );
        let starter = tokio::spawn(initial_startup(inner.clone()));
        inner.track(starter);
        let checks = tokio::spawn(inner.clone().lifecycle_checks());
        inner.track(checks);
        let sweeper = tokio::spawn(inner.clone().sweep_sessions());
        inner.track(sweeper);
        tracing::info!(pool = %inner.config.name, run_id = %inner.run.run_id(), size = inner.config.pool_size, "pool starting");
        Ok(Self { inner, call })
    }

    /// Returns the pool's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// Returns the pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Returns this run's id (carried by every worker's command line).
    pub fn run_id(&self) -> &RunId {
        self.inner.run.run_id()
    }

    /// Waits until every worker is ready.
    ///
    /// Fails at once when no worker at all could start (with the worker's stderr), or with a
    /// timeout error after `timeout` (the seeds' default is 15 s).
    pub async fn await_ready(&self, timeout: Duration) -> Result<(), Error> {
        let target = self.inner.config.pool_size;
        let mut ready = self.inner.ready_workers.subscribe();
        let mut round = self.inner.initial_round_done.subscribe();
        let wait = async {
            loop {
                if *ready.borrow_and_update() >= target {
                    return Ok(());
                }
                if *round.borrow_and_update() && *ready.borrow() == 0 {
                    if let Some(e) = self.inner.crash_loop_error() {
                        return Err(e);
                    }
                    let why = self
                        .inner
                        .last_start_error
                        .lock()
                        .ok()
                        .and_then(|e| e.clone());
                    // Without a start-up error the workers started and have died since: their
                    // replacements are under way, so keep waiting for them.
                    if let Some(why) = why {
                        return Err(Error::pool(format!(
                            "no worker of pool '{}' could start: {why}",
                            self.inner.config.name
                        )));
                    }
                }
                tokio::select! {
                    r = ready.changed() => if r.is_err() { return Err(Error::pool("pool is gone")) },
                    r = round.changed() => if r.is_err() { return Err(Error::pool("pool is gone")) },
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => {
                let have = *self.inner.ready_workers.borrow();
                let why = self
                    .inner
                    .last_start_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone());
                let mut op = format!(
                    "waiting for pool '{}' ({have} of {target} workers ready)",
                    self.inner.config.name
                );
                if let Some(why) = why {
                    op.push_str(&format!("; last start-up error: {why}"));
                }
                Err(Error::timeout(op, timeout))
            }
        }
    }

    /// Runs `tool` with JSON object `args` on a free worker (the session's own worker first).
    pub async fn execute(
        &self,
        tool: &str,
        args: Value,
        opts: CallOptions,
    ) -> Result<Payload, Error> {
        self.execute_call(ToolCall::new(tool, args)?.with_options(opts))
            .await
    }

    /// Runs a prepared [`ToolCall`] (binary arguments, metadata).
    pub async fn execute_call(&self, call: ToolCall) -> Result<Payload, Error> {
        unary(self.run(WorkerCall::unary(call.checked()?))).await
    }

    /// Returns a cloneable `tower::Service<ToolCall>` on this pool's call path, for
    /// `ServiceBuilder` middleware that needs `Clone` (the pool itself is a service too).
    pub fn service(&self) -> PoolService {
        PoolService {
            inner: self.inner.clone(),
            call: self.call.clone(),
        }
    }

    /// Runs a streaming tool; chunks arrive as the worker produces them.
    ///
    /// The worker stays checked out until the stream ends or is dropped (dropping it cancels the
    /// call). The whole stream must finish within the call's timeout (default 300 s).
    pub async fn execute_stream(
        &self,
        tool: &str,
        args: Value,
        opts: CallOptions,
    ) -> Result<ChunkStream, Error> {
        self.execute_call_stream(ToolCall::new(tool, args)?.with_options(opts))
            .await
    }

    /// Runs a prepared streaming [`ToolCall`] (array or binary arguments, metadata).
    pub async fn execute_call_stream(&self, call: ToolCall) -> Result<ChunkStream, Error> {
        let call = call.checked()?;
        let req = WorkerCall::stream(call, self.inner.config.stream_timeout);
        match self.run(req).await? {
            WorkerReply::Stream(stream) => Ok(stream),
            WorkerReply::Unary(_) => Err(Error::pool(
                "a worker layer answered a streaming call with a single reply; layers must keep the reply's kind",
            )),
        }
    }

    fn run(&self, req: WorkerCall) -> impl Future<Output = Result<WorkerReply, Error>> + 'static {
        run(self.inner.clone(), self.call.clone(), req)
    }

    /// Returns the pool's counters and gauges.
    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }

    /// Returns what the crash barrier saw: stopped slots, crashes by kind, tainted devices.
    pub fn crash_barrier_stats(&self) -> CrashBarrierStats {
        self.inner.crash_barrier_stats()
    }

    /// Lists the live workers.
    pub fn list_workers(&self) -> Vec<WorkerInfo> {
        let Ok(s) = self.inner.scheduler.lock() else {
            return Vec::new();
        };
        s.workers()
            .map(|(id, w, load, capacity)| self.inner.info_of(id, w, load, capacity))
            .collect()
    }

    /// Returns how many sessions are bound to a live worker.
    pub fn session_count(&self) -> usize {
        self.inner.scheduler.lock().map_or(0, |s| s.session_count())
    }

    #[cfg(feature = "host-bridge")]
    /// Returns the tools the host offers to this pool's workers (register more at any time).
    pub fn host_tools(&self) -> &HostTools {
        &self.inner.host_tools
    }

    /// Returns the worker a session is bound to, if it has one that still lives.
    pub fn session_worker(&self, session: &snakepit_core::SessionId) -> Option<WorkerId> {
        self.inner
            .scheduler
            .lock()
            .ok()?
            .session_worker(session)
            .cloned()
    }

    /// Kills every worker's process group at once (SIGKILL), even while [`Pool::shutdown`] is
    /// waiting out its grace period; no new calls are accepted. Returns the killed pids.
    pub fn kill(&self) -> Vec<u32> {
        self.inner.killed.store(true, Ordering::SeqCst);
        for (_, worker) in self.inner.members() {
            worker.kill();
        }
        self.inner.factory.kill_all()
    }

    /// Stops every worker (SIGTERM, grace, SIGKILL) and returns once their processes are gone.
    ///
    /// Queued requests are answered with a pool error; calls in flight get up to
    /// `graceful_shutdown_timeout_ms` to finish.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

/// The pool as a tower service of unary calls: wrap it with `ServiceBuilder` for rate limits,
/// load shedding, concurrency limits or retries of your own.
impl Service<ToolCall> for Pool {
    type Response = Payload;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Payload, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready()
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        Box::pin(unary(self.run(WorkerCall::unary(call))))
    }
}

/// A cloneable handle on a pool's call path, a `tower::Service<ToolCall>`; from
/// [`Pool::service`]. Dropping it leaves the pool running; calls after the pool is shut down
/// or dropped fail with a pool error.
#[derive(Clone)]
pub struct PoolService {
    inner: Arc<Inner>,
    call: WorkerService,
}

impl std::fmt::Debug for PoolService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolService")
            .field("pool", &self.inner.config.name)
            .finish()
    }
}

impl Service<ToolCall> for PoolService {
    type Response = Payload;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Payload, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready()
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        Box::pin(unary(run(
            self.inner.clone(),
            self.call.clone(),
            WorkerCall::unary(call),
        )))
    }
}

/// The payload of a unary call's reply.
async fn unary(reply: impl Future<Output = Result<WorkerReply, Error>>) -> Result<Payload, Error> {
    match reply.await? {
        WorkerReply::Unary(payload) => Ok(payload),
        WorkerReply::Stream(_) => Err(Error::pool(
            "a worker layer answered a unary call with a stream; layers must keep the reply's kind",
        )),
    }
}

/// Sends one call through a pool's stack, counting requests and errors.
async fn run(
    inner: Arc<Inner>,
    call: WorkerService,
    req: WorkerCall,
) -> Result<WorkerReply, Error> {
    inner.counters.requests.fetch_add(1, Ordering::Relaxed);
    let result = crate::crash_handling::with_crash_retry(&inner, call, req).await;
    if result.is_err() {
        inner.counters.errors.fetch_add(1, Ordering::Relaxed);
    }
    result
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        self.inner.abort_tasks();
        // Dropping the last handle of each worker kills its process group.
        if let Ok(mut s) = self.inner.scheduler.lock() {
            drop(s.drain_workers());
        }
    }
}

impl Inner {
    /// Takes a worker out of scheduling (no new calls); in-flight calls keep their lease.
    pub(crate) fn evict(&self, id: &WorkerId) {
        if let Ok(mut s) = self.scheduler.lock() {
            s.remove_worker(id);
            self.ready_workers.send_replace(s.worker_count());
        }
    }

    /// The live members of the pool.
    pub(crate) fn members(&self) -> Vec<(WorkerId, Arc<PoolWorker>)> {
        match self.scheduler.lock() {
            Ok(s) => s
                .workers()
                .map(|(id, w, _, _)| (id.clone(), w.clone()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn poll_ready(&self) -> Poll<Result<(), Error>> {
        if self.is_shutting_down() {
            return Poll::Ready(Err(self.shutting_down_error()));
        }
        // Back-pressure is the bounded queue: a full one answers `Error::Saturated` per call.
        Poll::Ready(Ok(()))
    }

    fn shutting_down_error(&self) -> Error {
        Error::pool(format!("pool '{}' is shutting down", self.config.name))
    }

    pub(crate) fn track(&self, handle: JoinHandle<()>) {
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|h| !h.is_finished());
            t.push(handle);
        }
    }

    fn abort_tasks(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            for h in t.drain(..) {
                h.abort();
            }
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst) || self.killed.load(Ordering::SeqCst)
    }

    fn stats(&self) -> PoolStats {
        let (workers, queued, (available, busy)) = match self.scheduler.lock() {
            Ok(s) => (s.worker_count(), s.queued(), s.availability()),
            Err(_) => (0, 0, (0, 0)),
        };
        let mut stats = self.counters.snapshot(workers, queued, available, busy);
        stats.sessions = self.sessions.lock().map(|s| s.len()).unwrap_or(0);
        stats.stopped_slots = self
            .barrier
            .lock()
            .map(|b| b.stopped_slots().len())
            .unwrap_or(0);
        stats
    }

    /// Takes a worker for `call` (its session's worker first) and binds the session to it.
    pub(crate) async fn checkout(
        self: Arc<Self>,
        call: &ToolCall,
        avoid: &[WorkerId],
    ) -> Result<Lease, Error> {
        if let Some(e) = self.crash_loop_error() {
            return Err(e);
        }
        let session = call.options.session_id.as_ref();
        if let Some(sid) = session {
            self.route_session(sid)?;
        }
        let lease = self.clone().take_worker(call, avoid).await?;
        if let Some(sid) = session {
            self.session_bound(sid, &lease.id);
        }
        Ok(lease)
    }

    /// Takes a worker for `call`, queueing up to `pool_queue_timeout` when all are busy.
    ///
    /// Ready workers (breaker not open) that are not in `avoid` (the workers earlier attempts
    /// of the call failed on) are preferred.
    async fn take_worker(
        self: Arc<Self>,
        call: &ToolCall,
        avoid: &[WorkerId],
    ) -> Result<Lease, Error> {
        if self.is_shutting_down() {
            return Err(self.shutting_down_error());
        }
        let acquired = {
            let mut s = self
                .scheduler
                .lock()
                .map_err(|_| Error::pool("scheduler lock poisoned"))?;
            s.acquire_preferring(call.options.session_id.as_ref(), |id, w| {
                w.is_ready() && !avoid.contains(id)
            })
        };
        let (ticket, mut rx) = match acquired {
            Acquire::Ready((id, worker)) => return Ok(Lease::new(self, (id, worker))),
            Acquire::Saturated => {
                self.counters.pool_saturated.fetch_add(1, Ordering::Relaxed);
                telemetry::saturated(
                    &self.config.name,
                    self.config.max_queue_size,
                    self.config.max_queue_size,
                    self.scheduler
                        .lock()
                        .map(|s| s.availability())
                        .unwrap_or((0, 0)),
                );
                return Err(Error::Saturated {
                    pool: self.config.name.clone(),
                    max_queue_size: self.config.max_queue_size,
                });
            }
            Acquire::Queued(ticket, rx) => (ticket, rx),
        };
        telemetry::queued(
            &self.config.name,
            self.scheduler.lock().map(|s| s.queued()).unwrap_or(0),
        );
        let enqueued = Instant::now();
        let outcome = tokio::time::timeout(self.config.queue_timeout, &mut rx).await;
        match outcome {
            Ok(Ok((id, worker))) => {
                telemetry::dequeued(&self.config.name, enqueued.elapsed());
                Ok(Lease::new(self, (id, worker)))
            }
            Ok(Err(_)) => Err(self.crash_loop_error().unwrap_or_else(|| {
                Error::pool(format!(
                    "pool '{}' shut down while the request was queued",
                    self.config.name
                ))
            })),
            Err(_) => {
                let cancelled = self
                    .scheduler
                    .lock()
                    .map(|mut s| s.cancel(ticket))
                    .unwrap_or(true);
                if !cancelled {
                    // Handed a worker in the same instant the timer fired: use it, answer once.
                    if let Ok((id, worker)) = rx.try_recv() {
                        telemetry::dequeued(&self.config.name, enqueued.elapsed());
                        return Ok(Lease::new(self, (id, worker)));
                    }
                }
                self.counters.queue_timeouts.fetch_add(1, Ordering::Relaxed);
                telemetry::queue_timeout(&self.config.name, enqueued.elapsed());
                let no_workers = self
                    .scheduler
                    .lock()
                    .map(|s| s.worker_count() == 0)
                    .unwrap_or(false);
                let start_error = self.last_start_error.lock().ok().and_then(|e| e.clone());
                match (no_workers, start_error) {
                    (true, Some(why)) => Err(Error::pool(format!(
                        "no worker of pool '{}' is running: {why}",
                        self.config.name
                    ))),
                    _ => Err(Error::QueueTimeout {
                        pool: self.config.name.clone(),
                        waited: enqueued.elapsed(),
                    }),
                }
            }
        }
    }

    /// Stops taking calls: background tasks end, queued callers get a pool error at once, and
    /// the members leave scheduling. Returns them, or `None` when shutdown already began.
    pub(crate) fn stop_taking_calls(&self) -> Option<Vec<Arc<PoolWorker>>> {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return None;
        }
        self.abort_tasks();
        let workers = match self.scheduler.lock() {
            Ok(mut s) => {
                s.close_queue();
                s.drain_workers()
            }
            Err(_) => Vec::new(),
        };
        self.ready_workers.send_replace(0);
        Some(workers)
    }

    pub(crate) fn next_worker_id(&self) -> WorkerId {
        WorkerId::for_pool(
            &self.config.name,
            self.next_index.fetch_add(1, Ordering::Relaxed) as usize,
        )
    }

    /// Starts one worker in a free slot; on success adds it to the scheduler and starts its
    /// monitor. A failure is a start-up crash of the slot: it carries the error and the crash
    /// barrier's verdict, which says when to retry, if.
    pub(crate) async fn start_one(self: &Arc<Self>, id: WorkerId) -> Result<(), StartFailure> {
        let started = Instant::now();
        telemetry::spawn_started(&self.config.name, &id);
        let slot = self.take_slot();
        let worker = match self.factory.start(id.clone()).await {
            Ok(handle) => Arc::new(PoolWorker::new(handle, &self.resilience, &self.layers)),
            Err(e) => {
                telemetry::spawn_failed(&self.config.name, &id, started.elapsed(), &e);
                tracing::warn!(pool = %self.config.name, worker = %id, error = %e, "worker failed to start");
                if let Ok(mut last) = self.last_start_error.lock() {
                    *last = Some(e.to_string());
                }
                if self.is_shutting_down() {
                    self.give_back_slot(slot);
                    return Err(StartFailure {
                        verdict: Verdict::Stop { crashes: 0 },
                        error: e,
                    });
                }
                let verdict = self.start_failed(slot, &e);
                return Err(StartFailure { verdict, error: e });
            }
        };
        if self.is_shutting_down() {
            self.give_back_slot(slot);
            worker.stop().await;
            return Ok(());
        }
        self.assign_slot(&id, slot);
        tracing::info!(target: "snakepit::pool", pool = %self.config.name, worker = %id, pid = worker.pid().unwrap_or(0), duration_ms = started.elapsed().as_millis() as u64, "worker spawned");
        telemetry::spawned(
            &self.config.name,
            &id,
            worker.pid().unwrap_or(0),
            started.elapsed(),
        );
        if let Ok(mut s) = self.scheduler.lock() {
            s.add_worker(
                id.clone(),
                worker.clone(),
                self.config.capacity_per_worker(),
            );
            self.ready_workers.send_replace(s.worker_count());
        }
        let monitor = tokio::spawn(monitor(self.clone(), id, worker));
        self.track(monitor);
        Ok(())
    }

    /// Keeps trying to bring a worker up, backing off while start-up keeps failing.
    ///
    /// Boxed because start-up, monitoring and replacement refer to each other.
    pub(crate) fn start_with_retry(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut backoff = Duration::from_millis(100);
            while !self.is_shutting_down() {
                let id = self.next_worker_id();
                let wait = match self.start_one(id).await {
                    Ok(()) => return,
                    // The crash barrier stopped the slot: it keeps failing to start.
                    Err(StartFailure {
                        verdict: Verdict::Stop { .. },
                        ..
                    }) => return,
                    Err(StartFailure {
                        verdict: Verdict::Restart(wait),
                        ..
                    }) => wait,
                };
                tokio::time::sleep(backoff.max(wait)).await;
                backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
            }
        })
    }

    async fn shutdown(self: &Arc<Self>) {
        let Some(workers) = self.stop_taking_calls() else {
            return;
        };
        self.ready_workers.send_replace(0);
        futures::future::join_all(workers.iter().map(|w| w.stop())).await;
        for w in &workers {
            telemetry::terminated(&self.config.name, w.id(), w.uptime(), "shutdown");
        }
        self.run
            .stop_zygotes(self.config.graceful_shutdown_timeout)
            .await;
        if self.config.cleanup.on_stop {
            // Safety net (`cleanup_on_stop`): whatever the registry still lists is killed, bounded.
            self.factory.cleanup(self.config.cleanup.timeout).await;
        }
        tracing::info!(pool = %self.config.name, stopped = workers.len(), "pool shut down");
    }
}

async fn initial_startup(inner: Arc<Inner>) {
    let began = Instant::now();
    let size = inner.config.pool_size;
    let batch = inner.config.startup_batch_size.max(1);
    let mut started = 0;
    while started < size && !inner.is_shutting_down() {
        let n = batch.min(size - started);
        let ids: Vec<WorkerId> = (0..n).map(|_| inner.next_worker_id()).collect();
        let results = futures::future::join_all(ids.into_iter().map(|id| {
            let inner = inner.clone();
            async move { inner.start_one(id).await }
        }))
        .await;
        for r in &results {
            if let Err(StartFailure {
                verdict: Verdict::Restart(wait),
                ..
            }) = r
            {
                let (again, wait) = (inner.clone(), *wait);
                let retry = tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    again.start_with_retry().await;
                });
                inner.track(retry);
            }
        }
        started += n;
        if started < size {
            tokio::time::sleep(inner.config.startup_batch_delay).await;
        }
    }
    telemetry::initialized(&inner.config.name, began.elapsed(), size);
    inner.initial_round_done.send_replace(true);
}

/// Why a worker did not start: the factory's error, and what the crash barrier makes of it.
#[derive(Debug)]
pub(crate) struct StartFailure {
    /// When to retry, if at all.
    pub(crate) verdict: Verdict,
    /// What went wrong.
    pub(crate) error: Error,
}

/// Waits for a worker's process to end; unless the pool is stopping, replaces it.
async fn monitor(inner: Arc<Inner>, id: WorkerId, worker: Arc<PoolWorker>) {
    let exit = worker.exited().await;
    if inner.is_shutting_down() || worker.retiring.load(Ordering::SeqCst) {
        // Shutdown or recycling: the exit was asked for, and any replacement is under way.
        inner.release_slot(&id);
        return;
    }
    tracing::warn!(target: "snakepit::pool", pool = %inner.config.name, worker = %id, pid = worker.pid().unwrap_or(0), exit = %exit, "worker exited");
    telemetry::crashed(&inner.config.name, &id, worker.uptime(), &exit.to_string());
    if let Ok(mut s) = inner.scheduler.lock() {
        s.remove_worker(&id);
        inner.ready_workers.send_replace(s.worker_count());
    }
    drop(worker);
    // The crash barrier decides: restart after a backoff (or the device's taint), or stop the slot.
    let Verdict::Restart(wait) = inner.worker_exited(&id, &exit) else {
        return;
    };
    let restarts = inner
        .counters
        .worker_restarts
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    telemetry::restarted(&inner.config.name, &id, restarts);
    let again = inner.clone();
    let replacement = tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        again.start_with_retry().await;
    });
    inner.track(replacement);
}

/// The default factory: resolves the interpreter (building snakepit's environment if missing),
/// sweeps workers left by dead hosts, and starts the run's registry and host bridge.
async fn process_factory(
    config: &PoolConfig,
    run: &Arc<RunContext>,
    #[cfg(feature = "host-bridge")] host_tools: HostTools,
) -> Result<ProcessWorkers, Error> {
    let python = snakepit_worker::python_env::ensure_python_for(
        config.python_executable.as_deref(),
        &config.python_env,
    )
    .await?;
    let registry_dir = default_registry_dir();
    if config.cleanup.rogue_cleanup {
        let swept = sweep_orphans(&registry_dir).await;
        if !swept.killed.is_empty() || !swept.reaped.is_empty() {
            tracing::warn!(target: "snakepit::pool", killed = ?swept.killed, reaped = ?swept.reaped, runs = ?swept.stale_runs, "killed worker processes left over by dead hosts");
        }
        if !swept.removed_dirs.is_empty() {
            tracing::info!(target: "snakepit::pool", dirs = ?swept.removed_dirs, "removed run directories of dead hosts");
        }
    }
    let registry = ProcessRegistry::create(&registry_dir, run.run_id())?;
    registry.record_run_dir(run.dir())?;
    #[cfg(feature = "host-bridge")]
    let host_bridge = {
        let mut bridge = HostBridge::start_on(run, host_tools, &config.host_bridge).await?;
        if config.launch_contract == LaunchContract::Snakepit {
            // Original-style servers dial the host over loopback TCP without a token.
            bridge.listen_loopback_tcp().await?;
        }
        bridge
    };
    #[cfg(not(feature = "host-bridge"))]
    if config.launch_contract == LaunchContract::Snakepit {
        return Err(Error::pool(format!(
            "pools[{}].launch_contract = \"snakepit\" needs the host bridge (the original's server calls the host before it serves): build snakepit-pool with its host-bridge feature, or use launch_contract = \"native\"",
            config.name
        )));
    }
    Ok(ProcessWorkers::new(
        config.clone(),
        python,
        run.clone(),
        registry,
        #[cfg(feature = "host-bridge")]
        host_bridge,
    ))
}
