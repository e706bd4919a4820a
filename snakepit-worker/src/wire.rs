//! Value encoding of the bridge protocol and the one mapping from a status to core errors.

use std::time::Duration;

use prost_types::Any;
use serde_json::Value;
use snakepit_core::json_limits::{parse_json_limited, JsonTextError};
use snakepit_core::{Chunk, Error, Payload, PythonErrorDetail, PythonException, ToolCall};
use snakepit_proto::pb;
use snakepit_proto::TYPE_URL_PREFIX;
use tonic::Code;

/// The `snakepit.<type>` name of a JSON value, sent as a hint in the Any's `type_url`.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::Bool(_) => "boolean",
        Value::Array(_) => "list",
        Value::Object(_) | Value::Null => "map",
    }
}

/// Encodes a JSON value as an Any whose `value` is its UTF-8 JSON.
pub(crate) fn encode_value(v: &Value) -> Any {
    Any {
        type_url: format!("{TYPE_URL_PREFIX}{}", type_name(v)),
        value: serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec()),
    }
}

/// Decodes an Any holding UTF-8 JSON; the `type_url` is only a hint.
///
/// Some servers send `google.protobuf.StringValue` or plain text: bytes that are not JSON
/// come back as a JSON string rather than an error. JSON nested deeper than
/// `MAX_VALUE_DEPTH` is an error, never parsed.
pub(crate) fn decode_value(any: &Any) -> Result<Value, JsonTextError> {
    if any.value.is_empty() {
        return Ok(Value::Null);
    }
    match parse_json_limited(&any.value) {
        Ok(v) => Ok(v),
        Err(JsonTextError::Syntax(_)) => Ok(Value::String(
            String::from_utf8_lossy(&any.value).into_owned(),
        )),
        Err(e) => Err(e),
    }
}

/// Builds the wire request of a tool call.
pub(crate) fn request_of(
    call: &ToolCall,
    stream: bool,
    correlation_id: &str,
) -> pb::ExecuteToolRequest {
    let mut metadata: std::collections::HashMap<String, String> = call
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.insert("correlation_id".into(), correlation_id.to_owned());
    if let Some(deadline) = call.deadline {
        metadata.insert("deadline_ms".into(), deadline.as_millis().to_string());
    }
    pb::ExecuteToolRequest {
        session_id: call
            .options
            .session_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        tool_name: call.tool.clone(),
        parameters: call
            .args
            .iter()
            .map(|(k, v)| (k.clone(), encode_value(v)))
            .collect(),
        metadata,
        stream,
        binary_parameters: call
            .binary_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Turns a unary response into a payload or the error it carries.
pub(crate) fn payload_of(tool: &str, resp: pb::ExecuteToolResponse) -> Result<Payload, Error> {
    if !resp.success {
        return Err(tool_error(tool, &resp.error_message));
    }
    let json = match resp.result.as_ref().map(decode_value) {
        None => Value::Null,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return Err(Error::validation(
                format!("result of tool '{tool}'"),
                e.to_string(),
            ))
        }
    };
    let binary = (!resp.binary_result.is_empty()).then_some(resp.binary_result);
    Ok(Payload {
        json,
        binary,
        ..Payload::default()
    })
}

/// Turns a wire chunk into a core chunk: JSON when it parses (within `MAX_VALUE_DEPTH`), raw bytes always.
pub(crate) fn chunk_of(c: pb::ToolChunk) -> Chunk {
    let json = if c.data.is_empty() {
        None
    } else {
        parse_json_limited(&c.data).ok()
    };
    Chunk {
        id: c.chunk_id,
        json,
        raw: c.data,
        is_final: c.is_final,
        metadata: c.metadata.into_iter().collect(),
    }
}

/// Maps a worker's error message (the JSON error object or plain text) to a typed error.
///
/// `UnknownToolError` and `InvalidArgumentsError` are the caller's mistakes (validation);
/// every other exception type is a Python exception with its type, message and traceback.
pub(crate) fn tool_error(tool: &str, message: &str) -> Error {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(message) else {
        return Error::Python(Box::new(PythonException::new(
            "Exception",
            message,
            "",
            Some(tool.to_owned()),
        )));
    };
    let field = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let exception_type = field("type");
    let text = field("message");
    match exception_type.as_str() {
        "UnknownToolError" => Error::validation("tool name", text),
        "InvalidArgumentsError" => {
            // Our workers' message repeats what the subject already says; keep it once.
            let prefix = format!("invalid arguments for tool '{tool}': ");
            let text = text
                .strip_prefix(&prefix)
                .map(str::to_owned)
                .unwrap_or(text);
            Error::validation(format!("arguments of tool '{tool}'"), text)
        }
        _ => {
            let traceback = match obj.get("traceback") {
                Some(Value::String(s)) => s.clone(),
                _ => obj
                    .get("stacktrace")
                    .and_then(Value::as_array)
                    .map(|lines| {
                        lines
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default(),
            };
            Error::Python(Box::new(PythonException {
                exception_type: if exception_type.is_empty() {
                    "Exception".into()
                } else {
                    exception_type
                },
                message: text,
                traceback,
                tool: Some(tool.to_owned()),
                detail: obj
                    .get("kind")
                    .and_then(Value::as_str)
                    .and_then(|kind| PythonErrorDetail::from_wire(kind, obj.get("details"))),
            }))
        }
    }
}

/// The worker's JSON error object carried by `status` (in its details or its message), when
/// it carries one: the worker answered with a structured error, it did not die.
pub(crate) fn reported_error(status: &tonic::Status) -> Option<&str> {
    let details = std::str::from_utf8(status.details()).unwrap_or_default();
    [details, status.message()].into_iter().find(|s| {
        serde_json::from_str::<serde_json::Map<String, Value>>(s)
            .is_ok_and(|o| o.contains_key("type") || o.contains_key("message"))
    })
}

/// The one place a `tonic::Status` becomes a core error.
///
/// Status details or messages holding the JSON error object (mid-stream failures, unknown
/// streaming tools) become the same typed errors as unary failures.
/// `timeout` is the call's limit, named in the timeout error.
pub(crate) fn status_to_error(
    worker: &str,
    tool: &str,
    status: &tonic::Status,
    timeout: Option<Duration>,
) -> Error {
    let json_text = reported_error(status);
    match status.code() {
        Code::DeadlineExceeded => Error::timeout(
            format!("call '{tool}' on worker {worker}"),
            timeout.unwrap_or_default(),
        ),
        Code::Unauthenticated => Error::worker(
            worker,
            format!("worker rejected the run token: {}", status.message()),
        ),
        Code::Unimplemented => Error::worker(
            worker,
            format!("worker does not implement this call: {}", status.message()),
        ),
        Code::InvalidArgument
        | Code::NotFound
        | Code::Internal
        | Code::Unknown
        | Code::FailedPrecondition
            if json_text.is_some() =>
        {
            tool_error(tool, json_text.unwrap_or_default())
        }
        code => Error::transport(
            format!(
                "call '{tool}' to worker {worker} failed: {code:?}: {}",
                status.message()
            ),
            Some(code as i32),
            Some(Box::new(status.clone())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use snakepit_core::ErrorKind;

    #[test]
    fn values_round_trip_with_type_hints() {
        for v in [
            json!("s"),
            json!(5),
            json!(2.5),
            json!(true),
            json!([1, 2]),
            json!({"a": 1}),
            Value::Null,
        ] {
            let any = encode_value(&v);
            assert!(any.type_url.starts_with(TYPE_URL_PREFIX));
            assert_eq!(decode_value(&any).unwrap(), v);
        }
        assert_eq!(
            encode_value(&json!(5)).type_url,
            "type.googleapis.com/snakepit.integer"
        );
    }

    #[test]
    fn only_a_json_error_object_counts_as_a_reported_error() {
        let object = r#"{"type": "ValueError", "message": "bad"}"#;
        let s = tonic::Status::internal(object);
        assert_eq!(reported_error(&s), Some(object));
        let s = tonic::Status::with_details(
            tonic::Code::Internal,
            "stream failed",
            bytes::Bytes::from(object),
        );
        assert_eq!(reported_error(&s), Some(object));
        // A crash's message that merely starts with a brace is not the worker's report.
        for text in ["{truncated", "{\"unrelated\": 1}", "connection reset", ""] {
            assert_eq!(
                reported_error(&tonic::Status::unavailable(text)),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn non_json_values_decode_as_strings() {
        let any = Any {
            type_url: "type.googleapis.com/google.protobuf.StringValue".into(),
            value: b"hello".to_vec(),
        };
        assert_eq!(decode_value(&any).unwrap(), json!("hello"));
    }

    #[test]
    fn argument_errors_say_their_prefix_once() {
        let msg = json!({"type": "InvalidArgumentsError", "message": "invalid arguments for tool 't': argument 'a' must be int"}).to_string();
        let err = tool_error("t", &msg);
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert_eq!(
            err.to_string(),
            "invalid arguments of tool 't': argument 'a' must be int"
        );
    }

    #[test]
    fn error_objects_become_typed_errors() {
        let msg = json!({"type": "ValueError", "message": "bad", "stacktrace": ["a", "b"], "context": {}}).to_string();
        let err = tool_error("fail", &msg);
        let py = err.python_exception().unwrap();
        assert_eq!(py.exception_type, "ValueError");
        assert_eq!(py.message, "bad");
        assert_eq!(py.traceback, "a\nb");
        assert_eq!(
            tool_error(
                "x",
                r#"{"type":"UnknownToolError","message":"no tool 'x'"}"#
            )
            .kind(),
            ErrorKind::Validation
        );
        assert_eq!(
            tool_error("x", "plain text").kind(),
            ErrorKind::PythonException
        );
    }

    #[test]
    fn recognised_failures_carry_their_kind_and_suggestions() {
        let msg = json!({
            "type": "OutOfMemoryError",
            "message": "CUDA out of memory",
            "kind": "out_of_memory",
            "details": {"device": "cuda:0", "requested_bytes": 1024, "suggestions": ["Reduce batch size"]},
        })
        .to_string();
        let err = tool_error("train", &msg);
        let py = err.python_exception().unwrap();
        assert_eq!(py.kind(), Some(snakepit_core::PythonErrorKind::OutOfMemory));
        assert!(err.to_string().contains("try: Reduce batch size"), "{err}");
        let plain = tool_error("x", r#"{"type":"ValueError","message":"m"}"#);
        assert_eq!(plain.python_exception().unwrap().kind(), None);
    }

    #[test]
    fn statuses_map_by_code() {
        let s = tonic::Status::unavailable("gone");
        assert_eq!(
            status_to_error("w", "t", &s, None).kind(),
            ErrorKind::Transport
        );
        let s = tonic::Status::internal(r#"{"type":"RuntimeError","message":"mid-stream"}"#);
        assert_eq!(
            status_to_error("w", "t", &s, None).kind(),
            ErrorKind::PythonException
        );
        let s = tonic::Status::deadline_exceeded("late");
        assert_eq!(
            status_to_error("w", "t", &s, None).kind(),
            ErrorKind::Timeout
        );
    }
}
