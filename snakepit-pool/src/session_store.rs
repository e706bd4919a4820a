//! The session store: each session's id, times, metadata, bound worker and call count, with a
//! TTL refreshed on use, a bound per pool, and the events callers watch (created, moved, ended).
//!
//! Pure logic driven by `tokio::time::Instant` (tested under paused time); the pool holds it
//! behind a mutex, sweeps it every `cleanup_interval` and sends `CleanupSession` to the worker
//! of each session that expired or was deleted.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use snakepit_core::config::{SessionAffinity, SessionSettings};
use snakepit_core::{Error, SessionId, WorkerId};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Capacity of the session event channel; a receiver that lags loses the oldest events.
const EVENT_CAPACITY: usize = 1_024;

/// A snapshot of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it was last used (created, called, or read with `get_session`).
    pub last_used: SystemTime,
    /// How long it lives after its last use.
    pub ttl: Duration,
    /// Free-form metadata given at creation.
    pub metadata: BTreeMap<String, String>,
    /// The worker it is bound to (the one that served its last call), if any yet.
    pub worker: Option<WorkerId>,
    /// Calls made in the session.
    pub calls: u64,
    /// What its calls do when its worker is busy.
    pub affinity: SessionAffinity,
    /// How many times it moved to another worker (its worker died or, with `prefer`, was busy).
    pub moves: u32,
}

/// Options of [`Pool::create_session`](crate::Pool::create_session).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Time to live after the last use (default: `session_store.default_ttl`, 3 600 s).
    pub ttl: Option<Duration>,
    /// Metadata kept with the session.
    pub metadata: BTreeMap<String, String>,
    /// Affinity mode (default: `session_store.affinity`, strict).
    pub affinity: Option<SessionAffinity>,
}

/// Something that happened to a session, as seen on [`Pool::session_events`](crate::Pool::session_events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The session was created (explicitly, or by its first call).
    Created {
        /// The session.
        id: SessionId,
    },
    /// The session's call ran on another worker than its last one.
    Moved {
        /// The session.
        id: SessionId,
        /// The worker it was bound to.
        from: WorkerId,
        /// The worker it is bound to now.
        to: WorkerId,
    },
    /// The session expired (unused for its TTL) and was removed.
    Expired {
        /// The session.
        id: SessionId,
        /// The worker that was told to clean it up.
        worker: Option<WorkerId>,
    },
    /// The session was deleted.
    Deleted {
        /// The session.
        id: SessionId,
        /// The worker that was told to clean it up.
        worker: Option<WorkerId>,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    created_at: SystemTime,
    last_used_wall: SystemTime,
    last_used: Instant,
    ttl: Duration,
    metadata: BTreeMap<String, String>,
    worker: Option<WorkerId>,
    calls: u64,
    affinity: SessionAffinity,
    moves: u32,
}

impl Entry {
    fn snapshot(&self, id: &SessionId) -> Session {
        Session {
            id: id.clone(),
            created_at: self.created_at,
            last_used: self.last_used_wall,
            ttl: self.ttl,
            metadata: self.metadata.clone(),
            worker: self.worker.clone(),
            calls: self.calls,
            affinity: self.affinity,
            moves: self.moves,
        }
    }

    fn touch(&mut self, now: Instant) {
        self.last_used = now;
        self.last_used_wall = SystemTime::now();
    }
}

/// Where a session's call should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The session's bound worker, if any.
    pub(crate) worker: Option<WorkerId>,
    /// Whether the call waits for that worker when it is busy.
    pub(crate) affinity: SessionAffinity,
}

/// The sessions of one pool.
#[derive(Debug)]
pub(crate) struct SessionStore {
    pool: String,
    settings: SessionSettings,
    sessions: HashMap<SessionId, Entry>,
    events: broadcast::Sender<SessionEvent>,
}

impl SessionStore {
    pub(crate) fn new(pool: &str, settings: SessionSettings) -> Self {
        Self {
            pool: pool.to_owned(),
            settings,
            sessions: HashMap::new(),
            events: broadcast::channel(EVENT_CAPACITY).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    fn emit(&self, event: SessionEvent) {
        match &event {
            SessionEvent::Moved { id, from, to } => {
                tracing::info!(target: "snakepit::session", event = "snakepit.session.moved", pool = %self.pool, session = %id, from = %from, to = %to, "session moved to another worker");
            }
            SessionEvent::Expired { id, .. } => {
                tracing::debug!(target: "snakepit::session", event = "snakepit.session.expired", pool = %self.pool, session = %id, "session expired");
            }
            _ => {}
        }
        // No receiver is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }

    fn full_error(&self) -> Error {
        Error::pool(format!(
            "pool '{}' holds its maximum of {} sessions (session_store.max_sessions); delete sessions, lower session_store.default_ttl or raise max_sessions",
            self.pool, self.settings.max_sessions
        ))
    }

    fn insert(&mut self, id: &SessionId, options: SessionOptions, now: Instant) -> &mut Entry {
        let wall = SystemTime::now();
        let entry = Entry {
            created_at: wall,
            last_used_wall: wall,
            last_used: now,
            ttl: options.ttl.unwrap_or(self.settings.default_ttl),
            metadata: options.metadata,
            worker: None,
            calls: 0,
            affinity: options.affinity.unwrap_or(self.settings.affinity),
            moves: 0,
        };
        self.emit(SessionEvent::Created { id: id.clone() });
        self.sessions.entry(id.clone()).or_insert(entry)
    }

    /// Creates a session; fails if it exists already or the pool is at `max_sessions`.
    pub(crate) fn create(
        &mut self,
        id: &SessionId,
        options: SessionOptions,
        now: Instant,
    ) -> Result<Session, Error> {
        if options.ttl.is_some_and(|t| t.is_zero()) {
            return Err(Error::validation(
                format!("session '{id}'"),
                "ttl must be positive",
            ));
        }
        if self.sessions.contains_key(id) {
            return Err(Error::validation(
                format!("session '{id}'"),
                "it exists already; use get_session, or delete_session first",
            ));
        }
        if self.sessions.len() >= self.settings.max_sessions {
            return Err(self.full_error());
        }
        Ok(self.insert(id, options, now).snapshot(id))
    }

    /// Returns a session and refreshes its last use (as the seeds' `get` does).
    pub(crate) fn get(&mut self, id: &SessionId, now: Instant) -> Option<Session> {
        let entry = self.sessions.get_mut(id)?;
        entry.touch(now);
        Some(entry.snapshot(id))
    }

    /// Returns every session (no refresh).
    pub(crate) fn list(&self) -> Vec<Session> {
        let mut all: Vec<Session> = self.sessions.iter().map(|(id, e)| e.snapshot(id)).collect();
        all.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        all
    }

    /// Removes a session (idempotent); returns it, so its worker can be told to clean up.
    pub(crate) fn delete(&mut self, id: &SessionId) -> Option<Session> {
        let entry = self.sessions.remove(id)?;
        let session = entry.snapshot(id);
        self.emit(SessionEvent::Deleted {
            id: id.clone(),
            worker: session.worker.clone(),
        });
        self.shrink();
        Some(session)
    }

    /// Starts a call in session `id`: creates the session on first use, refreshes it, counts
    /// the call and says where it should go.
    pub(crate) fn begin_call(&mut self, id: &SessionId, now: Instant) -> Result<Route, Error> {
        if !self.sessions.contains_key(id) && self.sessions.len() >= self.settings.max_sessions {
            return Err(self.full_error());
        }
        let entry = match self.sessions.contains_key(id) {
            true => self.sessions.get_mut(id),
            false => Some(self.insert(id, SessionOptions::default(), now)),
        };
        let Some(entry) = entry else {
            return Err(Error::pool("session store lost an entry it just checked"));
        };
        entry.touch(now);
        entry.calls += 1;
        Ok(Route {
            worker: entry.worker.clone(),
            affinity: entry.affinity,
        })
    }

    /// Records the worker that took a call of session `id`; a change of worker is a move.
    pub(crate) fn bind(&mut self, id: &SessionId, worker: &WorkerId) {
        let Some(entry) = self.sessions.get_mut(id) else {
            return;
        };
        let previous = entry.worker.replace(worker.clone());
        match previous {
            Some(from) if &from != worker => {
                entry.moves += 1;
                self.emit(SessionEvent::Moved {
                    id: id.clone(),
                    from,
                    to: worker.clone(),
                });
            }
            _ => {}
        }
    }

    /// Removes the sessions unused for their TTL; returns them (id and bound worker).
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<(SessionId, Option<WorkerId>)> {
        let mut expired = Vec::new();
        self.sessions.retain(|id, e| {
            let keep = now.saturating_duration_since(e.last_used) < e.ttl;
            if !keep {
                expired.push((id.clone(), e.worker.clone()));
            }
            keep
        });
        for (id, worker) in &expired {
            self.emit(SessionEvent::Expired {
                id: id.clone(),
                worker: worker.clone(),
            });
        }
        self.shrink();
        expired
    }

    /// Gives memory back after a flood of one-shot sessions has expired.
    fn shrink(&mut self) {
        if self.sessions.capacity() > 64 && self.sessions.capacity() > 4 * self.sessions.len() {
            self.sessions.shrink_to(self.sessions.len() * 2);
        }
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.sessions.capacity()
    }
}

#[cfg(test)]
#[path = "session_store_tests.rs"]
mod tests;
