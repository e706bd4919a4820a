//! The retry layer: the policy, the shared budget and the event observer.

use std::sync::Arc;

use tower::retry::budget::TpsBudget;
use tower::Layer;

use super::attempts::RetryAttempts;
use super::budget::RetryBudget;
use super::policy::RetryPolicy;
use super::Retry;
use crate::event::EventObserver;

/// Applies [`Retry`] to services; every service it wraps draws on one budget.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Arc<RetryPolicy>,
    budget: Arc<TpsBudget>,
    observer: EventObserver,
}

impl RetryLayer {
    /// Creates a layer applying `policy` with the default [`RetryBudget`].
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
            budget: Arc::new(RetryBudget::default().build()),
            observer: EventObserver::new(),
        }
    }

    /// Replaces the budget with a fresh one built from `budget`.
    pub fn with_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Arc::new(budget.build());
        self
    }

    /// Sets the observer retry events go to.
    pub fn with_observer(mut self, observer: EventObserver) -> Self {
        self.observer = observer;
        self
    }

    /// Returns the policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Returns a copy sending events to `observer` but drawing on the same budget.
    pub(crate) fn observed_by(&self, observer: EventObserver) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
            budget: Arc::clone(&self.budget),
            observer,
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let attempts = RetryAttempts::new(
            Arc::clone(&self.policy),
            Arc::clone(&self.budget),
            self.observer.clone(),
        );
        Retry::new(attempts, inner)
    }
}
