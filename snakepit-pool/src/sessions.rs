//! The pool's session API (create, get, list, delete, events) and the hooks the call path uses:
//! routing a session's call, binding it to the worker that took it, sweeping expired sessions
//! and telling their workers (`CleanupSession`).

use std::sync::Arc;

use snakepit_core::config::SessionAffinity;
use snakepit_core::{Error, SessionId, WorkerId};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::pool::{Inner, Pool};
use crate::session_store::{Session, SessionEvent, SessionOptions};

impl Pool {
    /// Creates session `id` (the seeds' `create_session`); fails when it exists already or the
    /// pool holds `session_store.max_sessions` sessions. Calls with an unknown session id create
    /// their session themselves, with the pool's defaults.
    pub fn create_session(
        &self,
        id: impl Into<SessionId>,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        self.inner
            .sessions
            .lock()
            .map_err(|_| Error::pool("session store lock poisoned"))?
            .create(&id.into(), options, Instant::now())
    }

    /// Returns session `id` and refreshes its last use; `None` when there is no such session.
    pub fn get_session(&self, id: &SessionId) -> Option<Session> {
        self.inner.sessions.lock().ok()?.get(id, Instant::now())
    }

    /// Returns every session of the pool, by id.
    pub fn list_sessions(&self) -> Vec<Session> {
        self.inner
            .sessions
            .lock()
            .map(|s| s.list())
            .unwrap_or_default()
    }

    /// Deletes session `id` and sends `CleanupSession` to its worker, so the adapter frees what
    /// it kept for it. Idempotent: returns whether the session existed.
    pub async fn delete_session(&self, id: &SessionId) -> Result<bool, Error> {
        let removed = self
            .inner
            .sessions
            .lock()
            .map_err(|_| Error::pool("session store lock poisoned"))?
            .delete(id);
        let Some(session) = removed else {
            return Ok(false);
        };
        self.inner.forget_session(id);
        if let Some(worker) = &session.worker {
            self.inner.cleanup_on_worker(id, worker).await?;
        }
        Ok(true)
    }

    /// Subscribes to the pool's session events: created, moved (the caller's session now runs on
    /// another worker), expired, deleted. A slow receiver loses the oldest events.
    pub fn session_events(&self) -> broadcast::Receiver<SessionEvent> {
        match self.inner.sessions.lock() {
            Ok(s) => s.subscribe(),
            Err(_) => broadcast::channel(1).1,
        }
    }
}

impl Inner {
    /// Starts a session's call: creates or refreshes the session and, when it prefers moving to
    /// waiting and its worker is busy, frees the call from that worker. Errors when the pool is
    /// at `max_sessions`.
    pub(crate) fn route_session(&self, session: &SessionId) -> Result<(), Error> {
        let route = self
            .sessions
            .lock()
            .map_err(|_| Error::pool("session store lock poisoned"))?
            .begin_call(session, Instant::now())?;
        if route.affinity == SessionAffinity::Prefer {
            if let (Some(worker), Ok(mut s)) = (route.worker, self.scheduler.lock()) {
                if !s.has_free_capacity(&worker) {
                    s.forget_session(session);
                }
            }
        }
        Ok(())
    }

    /// Records the worker that took a call of `session` (a different one is a visible move).
    pub(crate) fn session_bound(&self, session: &SessionId, worker: &WorkerId) {
        if let Ok(mut s) = self.sessions.lock() {
            s.bind(session, worker);
        }
    }

    fn forget_session(&self, session: &SessionId) {
        if let Ok(mut s) = self.scheduler.lock() {
            s.forget_session(session);
        }
    }

    /// Sends `CleanupSession` to `worker` if it is still a member; a gone worker took the
    /// session's state with it.
    async fn cleanup_on_worker(&self, session: &SessionId, worker: &WorkerId) -> Result<(), Error> {
        let member = self
            .members()
            .into_iter()
            .find(|(id, _)| id == worker)
            .map(|(_, w)| w);
        if let Some(w) = member {
            w.cleanup_session(session).await?;
        }
        Ok(())
    }

    /// Sweeps expired sessions every `cleanup_interval` until the pool stops, telling their
    /// workers to clean up (one at a time, so a flood of expiries cannot flood the workers).
    pub(crate) async fn sweep_sessions(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.sessions.cleanup_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        while !self.is_shutting_down() {
            tick.tick().await;
            let expired = match self.sessions.lock() {
                Ok(mut s) => s.sweep(Instant::now()),
                Err(_) => return,
            };
            if expired.is_empty() {
                continue;
            }
            if let Ok(mut s) = self.scheduler.lock() {
                for (id, _) in &expired {
                    s.forget_session(id);
                }
            }
            tracing::debug!(target: "snakepit::session", pool = %self.config.name, expired = expired.len(), "expired sessions swept");
            for (id, worker) in expired {
                if let Some(worker) = worker {
                    if let Err(e) = self.cleanup_on_worker(&id, &worker).await {
                        tracing::warn!(target: "snakepit::session", session = %id, worker = %worker, error = %e, "CleanupSession failed");
                    }
                }
            }
        }
    }
}
