//! The scheduler's state machine: worker slots, the bounded FIFO queue and session affinity.
//!
//! Pure logic with no I/O, generic over the worker handle so it is unit-tested with plain values.
//! Every queued request owns a oneshot receiver and is answered exactly once: by a worker handed
//! to it here, or by its own queue timeout (which removes it from the queue under the same lock).

use std::collections::{BTreeMap, HashMap, VecDeque};

use snakepit_core::{SessionId, WorkerId};
use tokio::sync::oneshot;

/// A worker handed to a request: its id and handle. The caller must `release` it.
pub(crate) type Grant<W> = (WorkerId, W);

/// The outcome of asking for a worker.
pub(crate) enum Acquire<W> {
    /// A worker with free capacity was taken at once.
    Ready(Grant<W>),
    /// All suitable workers are busy: wait on the receiver (or cancel with the ticket).
    Queued(u64, oneshot::Receiver<Grant<W>>),
    /// The queue is full.
    Saturated,
}

struct Slot<W> {
    handle: W,
    load: usize,
    capacity: usize,
}

struct Waiter<W> {
    ticket: u64,
    session: Option<SessionId>,
    affinity: Option<WorkerId>,
    tx: oneshot::Sender<Grant<W>>,
}

pub(crate) struct Scheduler<W> {
    slots: BTreeMap<WorkerId, Slot<W>>,
    queue: VecDeque<Waiter<W>>,
    sessions: HashMap<SessionId, WorkerId>,
    max_queue: usize,
    next_ticket: u64,
}

impl<W: Clone> Scheduler<W> {
    pub(crate) fn new(max_queue: usize) -> Self {
        Self {
            slots: BTreeMap::new(),
            queue: VecDeque::new(),
            sessions: HashMap::new(),
            max_queue,
            next_ticket: 0,
        }
    }

    /// Asks for a worker: the session's own worker first, else the least loaded one, else the queue.
    #[cfg(test)]
    pub(crate) fn acquire(&mut self, session: Option<&SessionId>) -> Acquire<W> {
        self.acquire_preferring(session, |_, _| true)
    }

    /// Like [`acquire`](Self::acquire), choosing among free workers those `preferred` accepts
    /// (ready ones, not tried by this call yet) before the others.
    ///
    /// A worker `preferred` rejects (its breaker is open, an earlier attempt failed on it) is
    /// still taken when it is the only free one, so its breaker answers at once instead of the
    /// call waiting in the queue for nothing.
    pub(crate) fn acquire_preferring(
        &mut self,
        session: Option<&SessionId>,
        preferred: impl Fn(&WorkerId, &W) -> bool,
    ) -> Acquire<W> {
        let affinity = session
            .and_then(|s| self.sessions.get(s))
            .filter(|w| self.slots.contains_key(*w))
            .cloned();
        let pick = match &affinity {
            // A session sticks to the worker that served it first while that worker lives.
            Some(id) => self
                .slots
                .get(id)
                .filter(|s| s.load < s.capacity)
                .map(|_| id.clone()),
            None => self
                .slots
                .iter()
                .filter(|(_, s)| s.load < s.capacity)
                .min_by_key(|(id, s)| (!preferred(id, &s.handle), s.load))
                .map(|(id, _)| id.clone()),
        };
        if let Some(id) = pick {
            return Acquire::Ready(self.take(&id, session));
        }
        if self.queue.len() >= self.max_queue {
            return Acquire::Saturated;
        }
        let (tx, rx) = oneshot::channel();
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queue.push_back(Waiter {
            ticket,
            session: session.cloned(),
            affinity,
            tx,
        });
        Acquire::Queued(ticket, rx)
    }

    fn take(&mut self, id: &WorkerId, session: Option<&SessionId>) -> Grant<W> {
        let slot = self
            .slots
            .get_mut(id)
            .expect("take is only called with a present slot");
        slot.load += 1;
        if let Some(s) = session {
            self.sessions.entry(s.clone()).or_insert_with(|| id.clone());
        }
        (id.clone(), slot.handle.clone())
    }

    /// Removes a queued request (its queue timeout fired); false if it was already answered.
    pub(crate) fn cancel(&mut self, ticket: u64) -> bool {
        match self.queue.iter().position(|w| w.ticket == ticket) {
            Some(i) => {
                self.queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// Gives a worker's capacity back and hands it to the next suitable waiter.
    pub(crate) fn release(&mut self, id: &WorkerId) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.load = slot.load.saturating_sub(1);
            self.dispatch(id);
        }
    }

    /// Adds a ready worker and serves waiting requests with it.
    pub(crate) fn add_worker(&mut self, id: WorkerId, handle: W, capacity: usize) {
        self.slots.insert(
            id.clone(),
            Slot {
                handle,
                load: 0,
                capacity,
            },
        );
        self.dispatch(&id);
    }

    /// Removes a worker (it died or is being replaced); its sessions lose their affinity.
    pub(crate) fn remove_worker(&mut self, id: &WorkerId) -> Option<W> {
        let slot = self.slots.remove(id)?;
        self.sessions.retain(|_, w| w != id);
        for waiter in &mut self.queue {
            if waiter.affinity.as_ref() == Some(id) {
                waiter.affinity = None;
            }
        }
        let ids: Vec<WorkerId> = self.slots.keys().cloned().collect();
        for other in ids {
            self.dispatch(&other);
        }
        Some(slot.handle)
    }

    /// Answers every queued request at once: each receiver sees its sender dropped, which the
    /// pool turns into a pool error (shutdown). Returns how many were waiting.
    pub(crate) fn close_queue(&mut self) -> usize {
        let n = self.queue.len();
        self.queue.clear();
        n
    }

    /// Removes every worker (shutdown) and returns their handles.
    pub(crate) fn drain_workers(&mut self) -> Vec<W> {
        self.sessions.clear();
        std::mem::take(&mut self.slots)
            .into_values()
            .map(|s| s.handle)
            .collect()
    }

    fn dispatch(&mut self, id: &WorkerId) {
        let mut i = 0;
        while i < self.queue.len() {
            let Some(slot) = self.slots.get(id) else {
                return;
            };
            if slot.load >= slot.capacity {
                return;
            }
            let w = &self.queue[i];
            if w.affinity.as_ref().is_some_and(|a| a != id) {
                i += 1;
                continue;
            }
            let Some(waiter) = self.queue.remove(i) else {
                return;
            };
            let grant = self.take(id, waiter.session.as_ref());
            if waiter.tx.send(grant).is_err() {
                // The caller went away while queued: the capacity goes back, nothing is lost.
                if let Some(slot) = self.slots.get_mut(id) {
                    slot.load -= 1;
                }
            }
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.slots.len()
    }

    /// (workers with free capacity, workers with at least one call in flight)
    pub(crate) fn availability(&self) -> (usize, usize) {
        let available = self.slots.values().filter(|s| s.load < s.capacity).count();
        let busy = self.slots.values().filter(|s| s.load > 0).count();
        (available, busy)
    }

    pub(crate) fn workers(&self) -> impl Iterator<Item = (&WorkerId, &W, usize, usize)> {
        self.slots
            .iter()
            .map(|(id, s)| (id, &s.handle, s.load, s.capacity))
    }

    pub(crate) fn session_worker(&self, session: &SessionId) -> Option<&WorkerId> {
        self.sessions.get(session)
    }

    /// Drops a session's affinity (it expired, was deleted, or prefers moving to waiting).
    pub(crate) fn forget_session(&mut self, session: &SessionId) {
        self.sessions.remove(session);
        if self.sessions.capacity() > 64 && self.sessions.capacity() > 4 * self.sessions.len() {
            self.sessions.shrink_to(self.sessions.len() * 2);
        }
    }

    /// Whether worker `id` is present and can take a call now.
    pub(crate) fn has_free_capacity(&self, id: &WorkerId) -> bool {
        self.slots.get(id).is_some_and(|s| s.load < s.capacity)
    }

    /// Answers every queued request by dropping it (their callers see the queue closed).
    pub(crate) fn clear_queue(&mut self) -> usize {
        let n = self.queue.len();
        self.queue.clear();
        n
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
