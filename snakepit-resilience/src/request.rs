//! The request traits the layers read: idempotency for retry, deadlines for the timeout layers.

use std::time::Duration;

use snakepit_core::ToolCall;

/// A request a retry layer may repeat when it says it is safe to.
///
/// Only idempotent requests are ever retried: a non-idempotent call that failed half-way
/// could have had side effects, so repeating it is the caller's decision, not the stack's.
pub trait RetryableRequest {
    /// Returns whether repeating the request is safe.
    fn is_idempotent(&self) -> bool;
}

/// A request that carries the time its handler has left, so the far end can see its deadline.
///
/// The overall [`Deadline`](crate::deadline::Deadline) layer sets the remaining time when the
/// call enters the stack, the retry layer shortens it before each retry, and the per-attempt
/// [`Timeout`](crate::timeout::Timeout) layer tightens it to the attempt's limit, so the worker
/// (and the Python tool behind it) always sees the time really left.
pub trait DeadlineAware {
    /// Returns the overall timeout the caller asked for, when it asked for one.
    ///
    /// The deadline layer uses its configured default when this is `None`.
    fn requested_timeout(&self) -> Option<Duration> {
        None
    }

    /// Returns the time left the handler should see, when one was set.
    fn deadline(&self) -> Option<Duration>;

    /// Records the time left the handler should see.
    fn set_deadline(&mut self, remaining: Duration);
}

impl RetryableRequest for ToolCall {
    fn is_idempotent(&self) -> bool {
        self.options.idempotent
    }
}

impl DeadlineAware for ToolCall {
    fn requested_timeout(&self) -> Option<Duration> {
        self.options.timeout
    }

    fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    fn set_deadline(&mut self, remaining: Duration) {
        self.deadline = Some(remaining);
    }
}

/// Tightens a request's deadline to `limit`, keeping an earlier one, and returns the result.
pub(crate) fn tighten_deadline<R: DeadlineAware>(req: &mut R, limit: Duration) -> Duration {
    let effective = match req.deadline() {
        Some(existing) if existing < limit => existing,
        _ => limit,
    };
    req.set_deadline(effective);
    effective
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use snakepit_core::CallOptions;

    #[test]
    fn tool_call_reports_idempotency_and_timeout_from_its_options() {
        let call = ToolCall::new("echo", json!({})).unwrap().with_options(
            CallOptions::default()
                .idempotent()
                .with_timeout(Duration::from_secs(2)),
        );
        assert!(call.is_idempotent());
        assert_eq!(call.requested_timeout(), Some(Duration::from_secs(2)));
        assert!(!ToolCall::new("echo", json!({})).unwrap().is_idempotent());
    }

    #[test]
    fn tighten_deadline_keeps_the_earlier_limit() {
        let mut call = ToolCall::new("echo", json!({})).unwrap();
        assert_eq!(
            tighten_deadline(&mut call, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(
            tighten_deadline(&mut call, Duration::from_secs(9)),
            Duration::from_secs(5)
        );
        assert_eq!(
            tighten_deadline(&mut call, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(call.deadline, Some(Duration::from_secs(1)));
    }
}
