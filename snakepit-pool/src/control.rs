//! Pool and worker control: worker details, lookup by pid, restart, stop and recycle of one
//! worker by id, and a bounded cleanup that reports the pids that would not die.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use snakepit_core::{Error, WorkerId};
use snakepit_worker::cleanup::CleanupOutcome;

use crate::lifecycle::{rss_mb, PoolWorker, RecycleReason};
use crate::pool::Inner;
use crate::stats::{WorkerInfo, WorkerState};
use crate::Pool;

impl Pool {
    /// Returns what the pool knows about worker `id`: pid, state, uptime, requests served,
    /// the Python process's RSS, its last error (`get_info` in the seeds).
    pub fn worker_info(&self, id: &WorkerId) -> Result<WorkerInfo, Error> {
        let s = self
            .inner
            .scheduler
            .lock()
            .map_err(|_| Error::pool("scheduler lock poisoned"))?;
        let info = s
            .workers()
            .find(|(wid, ..)| *wid == id)
            .map(|(wid, w, load, capacity)| self.inner.info_of(wid, w, load, capacity));
        drop(s);
        info.ok_or_else(|| self.inner.unknown_worker(id))
    }

    /// Returns the id of the live worker whose process is `pid` (`get_worker_id_by_pid`).
    pub fn worker_by_pid(&self, pid: u32) -> Option<WorkerId> {
        self.inner
            .members()
            .into_iter()
            .find(|(_, w)| w.pid() == Some(pid))
            .map(|(id, _)| id)
    }

    /// Stops worker `id` gracefully and starts a fresh one in its place; returns the new
    /// worker's id once it is ready (`restart_worker`). Its sessions lose their affinity.
    pub async fn restart_worker(&self, id: &WorkerId) -> Result<WorkerId, Error> {
        let worker = self.inner.take_out(id)?;
        worker.stop().await;
        tracing::info!(target: "snakepit::pool", pool = %self.inner.config.name, worker = %id, "worker restarted on request");
        let fresh = self.inner.next_worker_id();
        self.inner
            .start_one(fresh.clone())
            .await
            .map_err(|failure| failure.error)?;
        Ok(fresh)
    }

    /// Stops worker `id` gracefully without a replacement (`stop_worker`): the pool runs one
    /// worker short from then on, and [`Pool::await_ready`] waits for a full pool in vain.
    pub async fn stop_worker(&self, id: &WorkerId) -> Result<(), Error> {
        let worker = self.inner.take_out(id)?;
        worker.stop().await;
        tracing::info!(target: "snakepit::pool", pool = %self.inner.config.name, worker = %id, "worker stopped on request");
        Ok(())
    }

    /// Recycles worker `id` now: its replacement starts at once and the old one stops when
    /// its in-flight calls are done, as for `worker_max_requests` or `worker_ttl`.
    pub fn recycle_worker(&self, id: &WorkerId) -> Result<(), Error> {
        let worker = self.inner.find(id)?;
        self.inner.recycle(id, &worker, RecycleReason::Requested);
        Ok(())
    }

    /// Stops the pool at once and kills every process of its run, waiting at most `timeout`
    /// (the seeds' `cleanup`, `{timeout, pids}`): queued callers get a pool error, calls in
    /// flight fail, and the outcome lists the pids still alive when the bound ran out.
    pub async fn cleanup(&self, timeout: Duration) -> CleanupOutcome {
        let workers = self.inner.stop_taking_calls().unwrap_or_default();
        for w in &workers {
            w.kill();
        }
        drop(workers);
        // The pass makes sure, bounded, and finds anything the registry still lists.
        self.inner.factory.cleanup(timeout).await
    }
}

impl Inner {
    /// The worker `id` among the live members, or an error listing them.
    fn find(&self, id: &WorkerId) -> Result<Arc<PoolWorker>, Error> {
        self.members()
            .into_iter()
            .find(|(wid, _)| wid == id)
            .map(|(_, w)| w)
            .ok_or_else(|| self.unknown_worker(id))
    }

    /// Takes worker `id` out of scheduling for good: its exit is then expected, not a crash.
    fn take_out(&self, id: &WorkerId) -> Result<Arc<PoolWorker>, Error> {
        let worker = self.find(id)?;
        worker.retiring.store(true, Ordering::SeqCst);
        self.evict(id);
        Ok(worker)
    }

    fn unknown_worker(&self, id: &WorkerId) -> Error {
        let live: Vec<String> = self
            .members()
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
        Error::validation(
            format!("worker '{id}'"),
            format!(
                "pool '{}' has no such live worker (live workers: {}); list them with Pool::list_workers",
                self.config.name,
                if live.is_empty() { "none".to_owned() } else { live.join(", ") }
            ),
        )
    }

    /// The [`WorkerInfo`] of one member.
    pub(crate) fn info_of(
        &self,
        id: &WorkerId,
        w: &PoolWorker,
        load: usize,
        capacity: usize,
    ) -> WorkerInfo {
        let state = if w.retiring.load(Ordering::SeqCst) {
            WorkerState::Retiring
        } else if !w.is_ready() {
            WorkerState::CircuitOpen
        } else if load > 0 {
            WorkerState::Busy
        } else {
            WorkerState::Idle
        };
        WorkerInfo {
            id: id.clone(),
            pid: w.pid().unwrap_or(0),
            load,
            capacity,
            uptime: w.uptime(),
            circuit_state: w.breaker.as_ref().map(|b| b.state().as_str()),
            state,
            requests: w.served.load(Ordering::Relaxed),
            rss_mb: w.pid().and_then(rss_mb),
            last_error: w.last_error(),
            pool_identifier: self.config.pool_identifier.clone(),
        }
    }
}
