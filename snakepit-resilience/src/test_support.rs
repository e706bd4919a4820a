//! Test support shared by the module tests: a plain request type, errors, an event recorder.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use snakepit_core::{Error, PythonException};

use crate::event::{EventKind, EventObserver, ResilienceEvent};
use crate::request::{DeadlineAware, RetryableRequest};

/// A request that is not a `ToolCall`: says whether it is idempotent and carries a deadline.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TestRequest {
    pub(crate) idempotent: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
}

impl TestRequest {
    pub(crate) fn idempotent() -> Self {
        Self {
            idempotent: true,
            ..Self::default()
        }
    }
}

impl RetryableRequest for TestRequest {
    fn is_idempotent(&self) -> bool {
        self.idempotent
    }
}

impl DeadlineAware for TestRequest {
    fn requested_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    fn set_deadline(&mut self, remaining: Duration) {
        self.deadline = Some(remaining);
    }
}

pub(crate) fn transport() -> Error {
    Error::transport("connection reset", Some(14), None)
}

pub(crate) fn python() -> Error {
    Error::Python(Box::new(PythonException::new(
        "ValueError",
        "bad",
        "",
        None,
    )))
}

/// The events an observer saw, in order.
pub(crate) type Seen = Arc<Mutex<Vec<EventKind>>>;

/// An observer that records every event it sees.
pub(crate) fn recording_observer() -> (EventObserver, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let observer = EventObserver::with_hook(move |e: &ResilienceEvent| {
        sink.lock().unwrap().push(e.kind.clone());
    });
    (observer, seen)
}
