//! The values that travel through a pool: payloads, tool calls and stream chunks.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Map, Value};

use crate::json_limits::{dispose_value, value_depth, MAX_VALUE_DEPTH};
use crate::{Error, SessionId};

/// The longest timeout a call may ask for (30 days); longer ones are a validation error.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// A tool's result: a JSON value plus, optionally, raw bytes that skipped JSON entirely.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// The JSON part (`null` when the tool returned only bytes or nothing).
    pub json: Value,
    /// Raw bytes the tool returned (`binary_result`), untouched by JSON.
    pub binary: Option<Bytes>,
}

impl Payload {
    /// Builds a JSON-only payload.
    pub fn json(json: Value) -> Self {
        Self { json, binary: None }
    }

    /// Builds a bytes-only payload.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self {
            json: Value::Null,
            binary: Some(bytes.into()),
        }
    }
}

/// Per-call options: the seeds' `timeout` and `session_id`, plus call properties middleware reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    /// The call's timeout; `None` uses the pool's default (60 s for calls, 300 s for streams).
    pub timeout: Option<Duration>,
    /// The session whose worker the call prefers.
    pub session_id: Option<SessionId>,
    /// Whether the call may be retried safely (only idempotent calls are ever retried).
    pub idempotent: bool,
    /// Correlation id for tracing; generated when absent.
    pub correlation_id: Option<String>,
}

impl CallOptions {
    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the session.
    pub fn with_session(mut self, session: impl Into<SessionId>) -> Self {
        self.session_id = Some(session.into());
        self
    }

    /// Marks the call idempotent, so a retry layer may repeat it.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Checks the options: a timeout, when set, lies from 1 ms to [`MAX_CALL_TIMEOUT`].
    pub fn validate(&self) -> Result<(), Error> {
        match self.timeout {
            Some(t) if t < Duration::from_millis(1) || t > MAX_CALL_TIMEOUT => {
                Err(Error::validation(
                    "call timeout",
                    format!(
                        "{} ms is out of range; use 1 to {} ms (30 days)",
                        t.as_millis(),
                        MAX_CALL_TIMEOUT.as_millis()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// One tool call as it travels down the worker stack.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The tool's name.
    pub tool: String,
    /// Keyword arguments, each a JSON value.
    pub args: Map<String, Value>,
    /// Keyword arguments passed as raw bytes (`binary_parameters`).
    pub binary_args: BTreeMap<String, Bytes>,
    /// Free-form string metadata sent with the call.
    pub metadata: BTreeMap<String, String>,
    /// The call's options.
    pub options: CallOptions,
    /// The deadline the worker should see (time left when the call is sent); set by deadline layers.
    pub deadline: Option<Duration>,
}

impl ToolCall {
    /// Builds a call of `tool` with JSON object arguments.
    ///
    /// `args` must be a JSON object or `null`; anything else is a validation error naming the value.
    pub fn new(tool: impl Into<String>, args: Value) -> Result<Self, Error> {
        let tool = tool.into();
        if tool.trim().is_empty() {
            return Err(Error::validation(
                "tool name",
                "the tool name is empty; pass the name of a tool the adapter defines",
            ));
        }
        let args = match args {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other if value_depth(&other) > MAX_VALUE_DEPTH => {
                dispose_value(other);
                return Err(Error::validation(
                    format!("arguments of tool '{tool}'"),
                    "expected a JSON object of keyword arguments, got a deeply nested array",
                ));
            }
            other => {
                return Err(Error::validation(
                    format!("arguments of tool '{tool}'"),
                    format!("expected a JSON object of keyword arguments, got {other}"),
                ))
            }
        };
        Self {
            tool,
            args,
            binary_args: BTreeMap::new(),
            metadata: BTreeMap::new(),
            options: CallOptions::default(),
            deadline: None,
        }
        .checked()
    }

    /// Returns the call when it may be sent: each argument nested at most [`MAX_VALUE_DEPTH`]
    /// levels deep, and valid options; otherwise a validation error naming the argument.
    ///
    /// A refused call's arguments are taken apart without recursion, so a value of any depth
    /// is discarded safely. Pools check every call with this before it reaches a worker.
    pub fn checked(mut self) -> Result<Self, Error> {
        let too_deep = self
            .args
            .iter()
            .map(|(name, v)| (name, value_depth(v)))
            .find(|(_, depth)| *depth > MAX_VALUE_DEPTH)
            .map(|(name, depth)| (name.clone(), depth));
        if let Some((name, depth)) = too_deep {
            let tool = std::mem::take(&mut self.tool);
            for (_, v) in std::mem::take(&mut self.args) {
                dispose_value(v);
            }
            return Err(Error::validation(
                format!("arguments of tool '{tool}'"),
                format!(
                    "argument '{name}' nests {depth} levels deep; a value may nest at most {MAX_VALUE_DEPTH} levels (MAX_VALUE_DEPTH): flatten it or send it as bytes (binary_args)"
                ),
            ));
        }
        self.options.validate()?;
        Ok(self)
    }

    /// Replaces the call's options.
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// Adds a raw-bytes argument.
    pub fn with_binary_arg(mut self, name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        self.binary_args.insert(name.into(), bytes.into());
        self
    }
}

/// One piece of a streaming tool's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The chunk's id, `<tool>-<n>` counting from 1.
    pub id: String,
    /// The chunk's data: JSON when it parsed as JSON, otherwise `None` and the raw bytes in `raw`.
    pub json: Option<Value>,
    /// The raw bytes of the chunk as the worker sent them.
    pub raw: Bytes,
    /// Whether this is the last chunk.
    pub is_final: bool,
    /// Metadata the generator attached.
    pub metadata: BTreeMap<String, String>,
}

/// A stream of chunks from a streaming tool; ends after the final chunk or the first error.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, Error>> + Send + 'static>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    #[test]
    fn tool_call_rejects_non_object_arguments() {
        let err = ToolCall::new("echo", json!([1, 2])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.to_string().contains("[1,2]"), "{err}");
        assert!(ToolCall::new("echo", Value::Null).is_ok());
        assert_eq!(
            ToolCall::new(" ", json!({})).unwrap_err().kind(),
            ErrorKind::Validation
        );
    }

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(0), |v, _| Value::Array(vec![v]))
    }

    /// `{"x": value}` without `json!`, which would serialise `value` recursively.
    fn args_with_x(value: Value) -> Value {
        Value::Object(Map::from_iter([("x".to_owned(), value)]))
    }

    #[test]
    fn too_deep_arguments_are_a_validation_error_naming_the_argument() {
        let ok = ToolCall::new("echo", args_with_x(nested(MAX_VALUE_DEPTH)));
        assert!(ok.is_ok());
        let err = ToolCall::new("echo", args_with_x(nested(100_000))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(
            err.to_string().contains("argument 'x' nests 100000 levels"),
            "{err}"
        );
        let err = ToolCall::new("echo", nested(100_000)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
    }

    #[test]
    fn timeouts_outside_one_ms_to_thirty_days_are_refused() {
        for (t, ok) in [
            (Duration::ZERO, false),
            (Duration::from_micros(999), false),
            (Duration::from_millis(1), true),
            (MAX_CALL_TIMEOUT, true),
            (MAX_CALL_TIMEOUT + Duration::from_millis(1), false),
            (Duration::MAX, false),
        ] {
            let call = ToolCall::new("echo", json!({}))
                .unwrap()
                .with_options(CallOptions::default().with_timeout(t));
            match call.checked() {
                Ok(_) => assert!(ok, "{t:?} accepted"),
                Err(e) => {
                    assert!(!ok, "{t:?} refused: {e}");
                    assert_eq!(e.kind(), ErrorKind::Validation);
                    assert!(e.to_string().contains("call timeout"), "{e}");
                }
            }
        }
    }
}
