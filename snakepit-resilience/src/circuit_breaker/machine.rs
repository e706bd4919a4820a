//! The breaker's pure state machine (closed, open, half-open), driven by `tokio::time::Instant`.

use std::time::Duration;

use tokio::time::Instant;

/// The breaker's options, with the seeds' names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the breaker (`failure_threshold`, default 5).
    pub failure_threshold: u32,
    /// Time the breaker stays open before admitting probes (`reset_timeout_ms`, default 30 s).
    pub reset_timeout: Duration,
    /// Probe calls admitted at once while half-open (`half_open_max_calls`, default 1).
    pub half_open_max_calls: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            reset_timeout: Duration::from_millis(30_000),
            half_open_max_calls: 1,
        }
    }
}

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Normal operation: every call is admitted.
    Closed,
    /// The failure threshold was reached: calls fail fast until the reset timeout passes.
    Open,
    /// Testing recovery: a limited number of probe calls are admitted.
    HalfOpen,
}

impl CircuitState {
    /// Returns the seeds' name of the state: `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// A snapshot of a breaker's counters (the seeds' `stats/1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitStats {
    /// The current state.
    pub state: CircuitState,
    /// Consecutive failures since the last success (what the threshold is compared with).
    pub failure_count: u32,
    /// Calls that ended without a counted failure, since the breaker was created or reset.
    pub success_count: u64,
    /// Calls rejected without reaching the service, since the breaker was created or reset.
    pub rejected_count: u64,
    /// The configured `failure_threshold`.
    pub failure_threshold: u32,
    /// The configured `reset_timeout_ms`.
    pub reset_timeout: Duration,
    /// The configured `half_open_max_calls`.
    pub half_open_max_calls: u32,
    /// Probe calls in flight while half-open.
    pub half_open_calls: u32,
}

/// Admission to make one call, tagged with the phase it was granted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// The machine's generation when admitted; results from older generations are stale.
    generation: u64,
    /// Whether the call holds one of the half-open probe slots.
    probe: bool,
}

/// A refused call: what the caller is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) failures: u32,
    pub(crate) retry_after: Duration,
}

/// A state change worth an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Opened { failure_count: u32 },
    HalfOpened,
    Closed,
}

/// How a call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Every call is admitted; `failure_count` counts consecutive failures.
    Closed,
    /// Calls are rejected until `until`.
    Open { until: Instant },
    /// Up to `half_open_max_calls` probes run at once; the first result decides.
    HalfOpen { in_flight: u32 },
}

/// The breaker's state machine. Every transition bumps `generation`, so a call admitted in an
/// earlier phase cannot close or open the breaker when its result arrives late.
#[derive(Debug)]
pub(crate) struct CircuitMachine {
    config: CircuitBreakerConfig,
    phase: Phase,
    failure_count: u32,
    success_count: u64,
    rejected_count: u64,
    generation: u64,
}

impl CircuitMachine {
    pub(crate) fn new(config: CircuitBreakerConfig) -> Self {
        Self {
            config,
            phase: Phase::Closed,
            failure_count: 0,
            success_count: 0,
            rejected_count: 0,
            generation: 0,
        }
    }

    pub(crate) fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// Moves an open breaker whose reset timeout has passed to half-open.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            // open -> half-open: the reset timeout passed.
            Phase::Open { until } if now >= until => {
                self.enter(Phase::HalfOpen { in_flight: 0 });
                Some(Transition::HalfOpened)
            }
            _ => None,
        }
    }

    pub(crate) fn state(&self) -> CircuitState {
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Admits a call or rejects it; the transition is the half-open one `tick` may make.
    pub(crate) fn try_acquire(
        &mut self,
        now: Instant,
    ) -> (Result<Ticket, Rejection>, Option<Transition>) {
        let transition = self.tick(now);
        let generation = self.generation;
        let admission = match &mut self.phase {
            Phase::Closed => Ok(Ticket {
                generation,
                probe: false,
            }),
            Phase::Open { until } => Err(Rejection {
                failures: self.failure_count,
                retry_after: until.saturating_duration_since(now),
            }),
            Phase::HalfOpen { in_flight } if *in_flight < self.config.half_open_max_calls => {
                *in_flight += 1;
                Ok(Ticket {
                    generation,
                    probe: true,
                })
            }
            // Every probe slot is taken: fail fast until a probe decides.
            Phase::HalfOpen { .. } => Err(Rejection {
                failures: self.failure_count,
                retry_after: Duration::ZERO,
            }),
        };
        if admission.is_err() {
            self.rejected_count += 1;
        }
        (admission, transition)
    }

    /// Returns whether a call would be admitted now, without taking a probe slot.
    pub(crate) fn would_admit(&mut self, now: Instant) -> (bool, Option<Transition>) {
        let transition = self.tick(now);
        let admit = match self.phase {
            Phase::Closed => true,
            Phase::Open { .. } => false,
            Phase::HalfOpen { in_flight } => in_flight < self.config.half_open_max_calls,
        };
        (admit, transition)
    }

    /// Returns a ticket for a result recorded by hand (the seeds' `record_success/failure`).
    pub(crate) fn manual_ticket(&self) -> Ticket {
        Ticket {
            generation: self.generation,
            probe: false,
        }
    }

    /// Records how an admitted call ended.
    pub(crate) fn record(
        &mut self,
        ticket: Ticket,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        if outcome == Outcome::Success {
            self.success_count += 1;
        }
        if ticket.generation != self.generation {
            // Admitted in an earlier phase: it says nothing about the service now.
            return None;
        }
        match (self.phase, outcome) {
            (Phase::Closed, Outcome::Success) => {
                self.failure_count = 0;
                None
            }
            (Phase::Closed, Outcome::Failure) => {
                self.failure_count = self.failure_count.saturating_add(1);
                // closed -> open: the threshold of consecutive failures is reached.
                (self.failure_count >= self.config.failure_threshold).then(|| self.open(now))
            }
            // Unreachable with a current ticket: opening bumps the generation.
            (Phase::Open { .. }, _) => None,
            (Phase::HalfOpen { .. }, Outcome::Success) => {
                // half-open -> closed: a probe succeeded.
                self.failure_count = 0;
                self.enter(Phase::Closed);
                Some(Transition::Closed)
            }
            (Phase::HalfOpen { .. }, Outcome::Failure) => {
                // half-open -> open: a probe failed; wait another reset timeout.
                self.failure_count = self.failure_count.saturating_add(1);
                Some(self.open(now))
            }
        }
    }

    /// Releases the probe slot of a call that ended without a result (it was dropped).
    pub(crate) fn abandon(&mut self, ticket: Ticket) {
        if !ticket.probe || ticket.generation != self.generation {
            return;
        }
        if let Phase::HalfOpen { in_flight } = &mut self.phase {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    /// Closes the breaker and clears its counters.
    pub(crate) fn reset(&mut self) -> Option<Transition> {
        let was_closed = self.phase == Phase::Closed;
        self.failure_count = 0;
        self.success_count = 0;
        self.rejected_count = 0;
        self.enter(Phase::Closed);
        (!was_closed).then_some(Transition::Closed)
    }

    pub(crate) fn stats(&self) -> CircuitStats {
        CircuitStats {
            state: self.state(),
            failure_count: self.failure_count,
            success_count: self.success_count,
            rejected_count: self.rejected_count,
            failure_threshold: self.config.failure_threshold,
            reset_timeout: self.config.reset_timeout,
            half_open_max_calls: self.config.half_open_max_calls,
            half_open_calls: match self.phase {
                Phase::HalfOpen { in_flight } => in_flight,
                _ => 0,
            },
        }
    }

    fn open(&mut self, now: Instant) -> Transition {
        self.enter(Phase::Open {
            until: now + self.config.reset_timeout,
        });
        Transition::Opened {
            failure_count: self.failure_count,
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation = self.generation.wrapping_add(1);
    }
}
