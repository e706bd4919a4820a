//! The shared breaker handle: one state machine that every clone of a service sees.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use snakepit_core::{BoxError, Error};
use tokio::time::Instant;

use super::classifier::{FailureClassifier, FailureKinds};
use super::error::circuit_open;
use super::machine::{
    CircuitBreakerConfig, CircuitMachine, CircuitState, CircuitStats, Outcome, Ticket, Transition,
};
use crate::event::{EventKind, EventObserver};

struct Shared {
    machine: Mutex<CircuitMachine>,
    classifier: Arc<dyn FailureClassifier>,
    observer: EventObserver,
}

/// A circuit breaker: cheap to clone, every clone shares one state.
///
/// The [`CircuitBreaker`](super::CircuitBreaker) service uses it; it can also be used on its
/// own, around any future ([`CircuitBreakerHandle::call`]), or by hand
/// ([`try_acquire`](CircuitBreakerHandle::try_acquire) then record on the permit).
#[derive(Clone)]
pub struct CircuitBreakerHandle {
    shared: Arc<Shared>,
}

impl CircuitBreakerHandle {
    /// Creates a closed breaker with the default classifier ([`FailureKinds::default`]).
    pub fn new(config: CircuitBreakerConfig) -> Self {
        Self::with_parts(
            config,
            Arc::new(FailureKinds::default()),
            EventObserver::new(),
        )
    }

    /// Creates a closed breaker with a classifier and an event observer.
    pub fn with_parts(
        config: CircuitBreakerConfig,
        classifier: Arc<dyn FailureClassifier>,
        observer: EventObserver,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                machine: Mutex::new(CircuitMachine::new(config)),
                classifier,
                observer,
            }),
        }
    }

    /// Returns the breaker's configuration.
    pub fn config(&self) -> CircuitBreakerConfig {
        *self.lock().config()
    }

    /// Returns the current state (an open breaker past its reset timeout reports half-open).
    pub fn state(&self) -> CircuitState {
        let (state, transition) = {
            let mut machine = self.lock();
            let transition = machine.tick(Instant::now());
            (machine.state(), transition)
        };
        self.announce(transition);
        state
    }

    /// Returns the breaker's counters.
    pub fn stats(&self) -> CircuitStats {
        let (stats, transition) = {
            let mut machine = self.lock();
            let transition = machine.tick(Instant::now());
            (machine.stats(), transition)
        };
        self.announce(transition);
        stats
    }

    /// Closes the breaker and clears its counters; calls in flight no longer count.
    pub fn reset(&self) {
        let transition = self.lock().reset();
        self.announce(transition);
    }

    /// Returns whether a call would be admitted now (the seeds' `allow_call?`); takes no slot.
    pub fn allow_call(&self) -> bool {
        let (admit, transition) = self.lock().would_admit(Instant::now());
        self.announce(transition);
        admit
    }

    /// Admits one call, or fails fast with [`Error::CircuitOpen`].
    ///
    /// Record the call's result on the permit; a permit dropped without a result frees its
    /// half-open probe slot and counts as nothing.
    pub fn try_acquire(&self) -> Result<CallPermit, Error> {
        let (admission, transition) = self.lock().try_acquire(Instant::now());
        self.announce(transition);
        match admission {
            Ok(ticket) => Ok(CallPermit {
                handle: self.clone(),
                ticket,
                settled: false,
            }),
            Err(rejection) => Err(circuit_open(rejection)),
        }
    }

    /// Records a success made outside [`try_acquire`](Self::try_acquire) (the seeds' `record_success`).
    pub fn record_success(&self) {
        self.record_manual(Outcome::Success);
    }

    /// Records a failure made outside [`try_acquire`](Self::try_acquire) (the seeds' `record_failure`).
    pub fn record_failure(&self) {
        self.record_manual(Outcome::Failure);
    }

    /// Returns whether the classifier counts `error` as a failure.
    pub fn is_failure(&self, error: &(dyn StdError + 'static)) -> bool {
        self.shared.classifier.is_failure(error)
    }

    /// Runs `future` through the breaker (the seeds' `call/2`).
    ///
    /// Fails fast with [`Error::CircuitOpen`] while open; otherwise returns the future's
    /// result, its error boxed, after recording it.
    pub async fn call<F, T, E>(&self, future: F) -> Result<T, BoxError>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
    {
        let permit = self.try_acquire()?;
        match future.await {
            Ok(value) => {
                permit.record_success();
                Ok(value)
            }
            Err(error) => {
                let error = error.into();
                permit.record_error(&*error);
                Err(error)
            }
        }
    }

    fn record_manual(&self, outcome: Outcome) {
        let transition = {
            let mut machine = self.lock();
            let ticket = machine.manual_ticket();
            machine.record(ticket, outcome, Instant::now())
        };
        self.announce(transition);
    }

    fn settle(&self, ticket: Ticket, outcome: Option<Outcome>) {
        let transition = {
            let mut machine = self.lock();
            match outcome {
                Some(outcome) => machine.record(ticket, outcome, Instant::now()),
                None => {
                    machine.abandon(ticket);
                    None
                }
            }
        };
        self.announce(transition);
    }

    fn lock(&self) -> MutexGuard<'_, CircuitMachine> {
        // The machine has no invariant a panic elsewhere could break half-way.
        self.shared
            .machine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Emits the event of a transition; called after the lock is released.
    fn announce(&self, transition: Option<Transition>) {
        let Some(transition) = transition else { return };
        let kind = match transition {
            Transition::Opened { failure_count } => EventKind::CircuitOpened { failure_count },
            Transition::HalfOpened => EventKind::CircuitHalfOpened,
            Transition::Closed => EventKind::CircuitClosed,
        };
        self.shared.observer.emit(kind);
    }
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerHandle")
            .field("stats", &self.lock().stats())
            .field("observer", &self.shared.observer)
            .finish()
    }
}

/// Admission to make one call through a breaker; record how the call ended on it.
#[must_use = "record the call's result on the permit"]
pub struct CallPermit {
    handle: CircuitBreakerHandle,
    ticket: Ticket,
    settled: bool,
}

impl CallPermit {
    /// Records that the call succeeded.
    pub fn record_success(mut self) {
        self.settled = true;
        self.handle.settle(self.ticket, Some(Outcome::Success));
    }

    /// Records that the call failed in a way that counts against the breaker.
    pub fn record_failure(mut self) {
        self.settled = true;
        self.handle.settle(self.ticket, Some(Outcome::Failure));
    }

    /// Records that the call ended in `error`, counted as a failure only if the classifier says so.
    pub fn record_error(self, error: &(dyn StdError + 'static)) {
        if self.handle.is_failure(error) {
            self.record_failure();
        } else {
            self.record_success();
        }
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        if !self.settled {
            self.handle.settle(self.ticket, None);
        }
    }
}

impl fmt::Debug for CallPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallPermit")
            .field("ticket", &self.ticket)
            .finish()
    }
}
