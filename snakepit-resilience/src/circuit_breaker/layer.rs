//! The breaker's layer: configuration, and a breaker per wrapped service unless one is shared.

use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::classifier::{FailureClassifier, FailureKinds};
use super::handle::CircuitBreakerHandle;
use super::machine::CircuitBreakerConfig;
use super::CircuitBreaker;
use crate::event::EventObserver;

/// Applies [`CircuitBreaker`] to services.
///
/// By default each `layer` call creates a fresh breaker, so a per-worker stack gets one
/// breaker per worker. [`CircuitBreakerLayer::shared`] makes every wrapped service share one.
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    config: CircuitBreakerConfig,
    classifier: Arc<dyn FailureClassifier>,
    observer: EventObserver,
    shared: Option<CircuitBreakerHandle>,
}

impl CircuitBreakerLayer {
    /// Creates a layer that gives each wrapped service its own breaker.
    pub fn new(config: CircuitBreakerConfig) -> Self {
        Self {
            config,
            classifier: Arc::new(FailureKinds::default()),
            observer: EventObserver::new(),
            shared: None,
        }
    }

    /// Creates a layer whose services all use `handle`.
    pub fn shared(handle: CircuitBreakerHandle) -> Self {
        Self {
            config: handle.config(),
            classifier: Arc::new(FailureKinds::default()),
            observer: EventObserver::new(),
            shared: Some(handle),
        }
    }

    /// Sets the classifier of the breakers this layer creates.
    pub fn with_classifier(mut self, classifier: impl FailureClassifier + 'static) -> Self {
        self.classifier = Arc::new(classifier);
        self
    }

    /// Sets the event observer of the breakers this layer creates.
    pub fn with_observer(mut self, observer: EventObserver) -> Self {
        self.observer = observer;
        self
    }

    /// Returns the breaker configuration.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// Returns the breaker the next `layer` call will use: the shared one, or a fresh one.
    pub fn make_handle(&self) -> CircuitBreakerHandle {
        match &self.shared {
            Some(handle) => handle.clone(),
            None => CircuitBreakerHandle::with_parts(
                self.config,
                Arc::clone(&self.classifier),
                self.observer.clone(),
            ),
        }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.make_handle())
    }
}

impl fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("config", &self.config)
            .field("observer", &self.observer)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}
