//! The per-call retry state: tower's `Policy`, applying a `RetryPolicy` with a budget.

use std::sync::Arc;
use std::time::Duration;

use snakepit_core::{BoxError, Error};
use tokio::time::{sleep, Instant, Sleep};
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::Policy;

use super::policy::RetryPolicy;
use crate::event::{EventKind, EventObserver};
use crate::request::{DeadlineAware, RetryableRequest};

/// Tower's retry [`Policy`] for one call: counts attempts, waits the backoff, spends budget.
///
/// Non-idempotent requests are never cloned, so never retried. Before each retry the request's
/// deadline is shortened by the time already spent and the backoff, and no retry is made
/// when the backoff would use up the time left.
#[derive(Debug, Clone)]
pub struct RetryAttempts {
    policy: Arc<RetryPolicy>,
    budget: Arc<TpsBudget>,
    observer: EventObserver,
    /// Attempts already made and failed (0 before the first result).
    made: u32,
    started: Option<Instant>,
    initial_deadline: Option<Duration>,
}

impl RetryAttempts {
    pub(crate) fn new(
        policy: Arc<RetryPolicy>,
        budget: Arc<TpsBudget>,
        observer: EventObserver,
    ) -> Self {
        Self {
            policy,
            budget,
            observer,
            made: 0,
            started: None,
            initial_deadline: None,
        }
    }

    /// Returns the policy applied.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    fn exhausted(&self, attempts: u32, error: &BoxError) {
        self.observer.emit(EventKind::RetryExhausted {
            attempts,
            last_error: error.to_string(),
            last_error_kind: Error::kind_of(&**error),
        });
    }
}

impl<Req, Res> Policy<Req, Res, BoxError> for RetryAttempts
where
    Req: RetryableRequest + DeadlineAware + Clone,
{
    type Future = Sleep;

    fn retry(&mut self, req: &mut Req, result: &mut Result<Res, BoxError>) -> Option<Self::Future> {
        let Err(error) = result else { return None };
        let made = self.made.saturating_add(1);
        if !self.policy.retry_for_error(&**error) {
            return None;
        }
        if !self.policy.should_retry(made) {
            self.exhausted(made, error);
            return None;
        }
        let delay = self.policy.backoff_for_attempt(made);
        if let (Some(initial), Some(started)) = (self.initial_deadline, self.started) {
            match initial.checked_sub(started.elapsed() + delay) {
                Some(left) if !left.is_zero() => req.set_deadline(left),
                // The deadline passes before the retry could start.
                _ => {
                    self.exhausted(made, error);
                    return None;
                }
            }
        }
        if !self.budget.withdraw() {
            self.observer
                .emit(EventKind::RetryBudgetExhausted { attempts: made });
            return None;
        }
        self.made = made;
        self.observer.emit(EventKind::RetryAttempt {
            attempt: made + 1,
            delay,
        });
        Some(sleep(delay))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        if self.made == 0 {
            // A new call: the service's own policy is asked once per call, before the copy
            // that follows the call is taken.
            self.budget.deposit();
            self.started = Some(Instant::now());
            self.initial_deadline = req.deadline();
        }
        req.is_idempotent().then(|| req.clone())
    }
}
