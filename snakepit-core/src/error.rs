//! The error taxonomy every snakepit-rs crate speaks.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::python_error::{PythonErrorDetail, PythonErrorKind};

/// A type-erased error, as tower middleware passes them around.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of snakepit-rs operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The category of an [`Error`], used to classify failures without matching on strings.
///
/// The categories follow the seeds' `Snakepit.Error` (`pool`, `worker`, `timeout`,
/// `python_error`, `grpc_error`, `validation`) and split out the cases a caller reacts to
/// differently: a full queue, a queue timeout, an open circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The pool cannot serve: not started, shut down, or no such pool.
    Pool,
    /// A worker failed outside the tool: it could not start, or it answered nonsense.
    Worker,
    /// A worker process died while serving the call.
    WorkerCrash,
    /// The call did not finish within its timeout.
    Timeout,
    /// The request waited in the queue longer than `pool_queue_timeout`.
    QueueTimeout,
    /// The queue was full (`pool_max_queue_size`): the request was rejected at once.
    Saturated,
    /// The caller's input was wrong: unknown tool, bad arguments, bad option.
    Validation,
    /// The Python tool raised an exception.
    PythonException,
    /// The gRPC transport failed: connection refused, reset, or an unexpected status.
    Transport,
    /// A circuit breaker is open and fails calls fast.
    CircuitOpen,
    /// The configuration is invalid.
    Config,
}

impl ErrorKind {
    /// Returns the snake_case name of the kind, as used in configuration (`retriable_errors`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Pool => "pool",
            ErrorKind::Worker => "worker",
            ErrorKind::WorkerCrash => "worker_crash",
            ErrorKind::Timeout => "timeout",
            ErrorKind::QueueTimeout => "queue_timeout",
            ErrorKind::Saturated => "saturated",
            ErrorKind::Validation => "validation",
            ErrorKind::PythonException => "python_exception",
            ErrorKind::Transport => "transport",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Config => "config",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exception raised by Python code, as the worker reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonException {
    /// The exception's class name, such as `ValueError`.
    pub exception_type: String,
    /// The exception's message.
    pub message: String,
    /// The formatted traceback, empty when the worker sent none.
    pub traceback: String,
    /// The tool that raised it, when known.
    pub tool: Option<String>,
    /// What the worker recognised it as (shape, device, memory, package), with suggestions.
    #[serde(default)]
    pub detail: Option<PythonErrorDetail>,
}

impl PythonException {
    /// Builds an exception without a recognised detail.
    pub fn new(
        exception_type: impl Into<String>,
        message: impl Into<String>,
        traceback: impl Into<String>,
        tool: Option<String>,
    ) -> Self {
        Self {
            exception_type: exception_type.into(),
            message: message.into(),
            traceback: traceback.into(),
            tool,
            detail: None,
        }
    }

    /// Which recognised failure it is, if any.
    pub fn kind(&self) -> Option<PythonErrorKind> {
        self.detail.as_ref().map(PythonErrorDetail::kind)
    }
}

impl fmt::Display for PythonException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.exception_type, self.message)?;
        if let Some(tool) = &self.tool {
            write!(f, " (in tool '{tool}')")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, " [{}]", detail.kind())?;
            if !detail.suggestions().is_empty() {
                write!(f, "; try: {}", detail.suggestions().join("; "))?;
            }
        }
        Ok(())
    }
}

/// Every failure a snakepit-rs call can end in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool cannot serve the request.
    #[error("pool error: {message}")]
    Pool {
        /// What went wrong.
        message: String,
        /// The underlying cause (an I/O error, a serialisation error, ...), when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A worker failed outside the tool.
    #[error("worker {worker}: {message}")]
    Worker {
        /// The worker concerned (or a description when no id applies).
        worker: String,
        /// What went wrong, including captured stderr where it helps.
        message: String,
        /// The underlying cause.
        #[source]
        source: Option<BoxError>,
    },
    /// A worker process died while serving the call.
    #[error("worker {worker} crashed: {message}")]
    WorkerCrash {
        /// The worker that died.
        worker: String,
        /// How it died (exit status or signal).
        message: String,
    },
    /// The call exceeded its timeout.
    #[error("{operation} timed out after {} ms", timeout.as_millis())]
    Timeout {
        /// What timed out (`call 'sleep'`, `worker start-up`, ...).
        operation: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// The request waited too long in the queue.
    #[error("request waited {} ms in the queue of pool '{pool}' without a free worker (pool_queue_timeout); add workers or raise pool_queue_timeout", waited.as_millis())]
    QueueTimeout {
        /// The pool whose queue it waited in.
        pool: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The queue was full.
    #[error("pool '{pool}' is saturated: all workers busy and {max_queue_size} requests already queued (pool_max_queue_size)")]
    Saturated {
        /// The saturated pool.
        pool: String,
        /// The configured queue bound.
        max_queue_size: usize,
    },
    /// The caller's input was wrong.
    #[error("invalid {subject}: {message}")]
    Validation {
        /// What was invalid (`arguments of tool 'add'`, `tool name`, ...).
        subject: String,
        /// What was wrong and what to do.
        message: String,
    },
    /// The Python tool raised an exception.
    #[error("python exception: {0}")]
    Python(Box<PythonException>),
    /// The transport failed.
    #[error("transport error: {message}")]
    Transport {
        /// What failed.
        message: String,
        /// The gRPC status code, when there was one.
        grpc_code: Option<i32>,
        /// The underlying cause.
        #[source]
        source: Option<BoxError>,
    },
    /// A circuit breaker is open.
    #[error("circuit open: failing fast after {failures} consecutive failures; retry after {} ms", retry_after.as_millis())]
    CircuitOpen {
        /// The consecutive failures that opened it.
        failures: u32,
        /// Time until the breaker admits a probe.
        retry_after: Duration,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Error {
    /// Returns the category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Pool { .. } => ErrorKind::Pool,
            Error::Worker { .. } => ErrorKind::Worker,
            Error::WorkerCrash { .. } => ErrorKind::WorkerCrash,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::QueueTimeout { .. } => ErrorKind::QueueTimeout,
            Error::Saturated { .. } => ErrorKind::Saturated,
            Error::Validation { .. } => ErrorKind::Validation,
            Error::Python(_) => ErrorKind::PythonException,
            Error::Transport { .. } => ErrorKind::Transport,
            Error::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            Error::Config(_) => ErrorKind::Config,
        }
    }

    /// Builds a [`Error::Pool`].
    pub fn pool(message: impl Into<String>) -> Self {
        Error::Pool {
            message: message.into(),
            source: None,
        }
    }

    /// Builds a [`Error::Pool`] caused by `source`; `message` says what was being done (and
    /// may quote the cause, since many callers print only the message).
    pub fn pool_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Pool {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds a [`Error::Worker`] without a source.
    pub fn worker(worker: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::Worker {
            worker: worker.to_string(),
            message: message.into(),
            source: None,
        }
    }

    /// Builds a [`Error::Timeout`].
    pub fn timeout(operation: impl Into<String>, timeout: Duration) -> Self {
        Error::Timeout {
            operation: operation.into(),
            timeout,
        }
    }

    /// Builds a [`Error::Validation`].
    pub fn validation(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            subject: subject.into(),
            message: message.into(),
        }
    }

    /// Builds a [`Error::Transport`].
    pub fn transport(
        message: impl Into<String>,
        grpc_code: Option<i32>,
        source: Option<BoxError>,
    ) -> Self {
        Error::Transport {
            message: message.into(),
            grpc_code,
            source,
        }
    }

    /// Returns the Python exception, when this error is one.
    pub fn python_exception(&self) -> Option<&PythonException> {
        match self {
            Error::Python(e) => Some(e),
            _ => None,
        }
    }

    /// Finds the snakepit [`Error`] in a boxed error's `source()` chain and returns its kind.
    ///
    /// Tower middleware hands errors around as [`BoxError`]; this is how they are classified
    /// by type rather than by message. Returns `None` for foreign errors.
    pub fn kind_of(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = current {
            if let Some(ours) = e.downcast_ref::<Error>() {
                return Some(ours.kind());
            }
            current = e.source();
        }
        None
    }

    /// Turns a boxed error back into an [`Error`], keeping ours as they are and wrapping others.
    pub fn from_box(err: BoxError) -> Self {
        match err.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::Transport {
                message: other.to_string(),
                grpc_code: None,
                source: Some(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_errors_carry_their_cause_as_source() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let err = Error::pool_from("cannot create /x: denied", io);
        assert_eq!(err.to_string(), "pool error: cannot create /x: denied");
        let source = err.source().expect("the cause is kept");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("as the io::Error it was");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(Error::pool("no cause").source().is_none());
    }

    #[test]
    fn kind_of_walks_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper")]
        struct Wrapper(#[source] Error);
        let inner = Error::timeout("call 'sleep'", Duration::from_millis(50));
        let wrapped = Wrapper(inner);
        assert_eq!(Error::kind_of(&wrapped), Some(ErrorKind::Timeout));
        let foreign = std::io::Error::other("x");
        assert_eq!(Error::kind_of(&foreign), None);
    }

    #[test]
    fn from_box_keeps_our_errors() {
        let boxed: BoxError = Box::new(Error::pool("gone"));
        assert_eq!(Error::from_box(boxed).kind(), ErrorKind::Pool);
        let boxed: BoxError = "plain".into();
        assert_eq!(Error::from_box(boxed).kind(), ErrorKind::Transport);
    }

    #[test]
    fn python_exception_message_reads_type_colon_message() {
        let e = Error::Python(Box::new(PythonException::new(
            "ValueError",
            "bad",
            "",
            Some("fail".into()),
        )));
        assert_eq!(
            e.to_string(),
            "python exception: ValueError: bad (in tool 'fail')"
        );
        assert_eq!(e.kind(), ErrorKind::PythonException);
    }
}
