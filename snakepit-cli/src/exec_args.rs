//! `snakepit exec --args`: inline JSON, `@FILE` or `-` (stdin), parsed within the depth limit.

use std::io::Read;

use serde_json::Value;
use snakepit_core::json_limits::{
    dispose_value, parse_json_within, JsonTextError, MAX_VALUE_DEPTH,
};

use crate::CliError;

/// Reads and parses `--args`; errors describe the problem without echoing the input back.
pub(crate) fn parse_args(spec: &str) -> Result<Value, CliError> {
    let (text, origin) = read_args(spec)?;
    // The arguments object is one level around the values, which may nest MAX_VALUE_DEPTH.
    let value = parse_json_within(&text, MAX_VALUE_DEPTH + 1).map_err(|e| match e {
        JsonTextError::TooDeep { .. } => CliError::usage(format!(
            "--args nests more than {} levels deep ({origin}); values may nest at most {MAX_VALUE_DEPTH} levels inside the arguments object",
            MAX_VALUE_DEPTH + 1
        )),
        JsonTextError::Syntax(e) => {
            CliError::usage(format!("--args is not valid JSON ({origin}): {e}"))
        }
    })?;
    let kind = match &value {
        Value::Object(_) => return Ok(value),
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    };
    dispose_value(value);
    Err(CliError::usage(format!(
        "--args must be a JSON object of keyword arguments, got {kind} ({origin}; e.g. --args '{{\"a\": 1}}')"
    )))
}

fn read_args(spec: &str) -> Result<(Vec<u8>, String), CliError> {
    if spec == "-" {
        let mut text = Vec::new();
        std::io::stdin()
            .read_to_end(&mut text)
            .map_err(|e| CliError::usage(format!("cannot read --args from standard input: {e}")))?;
        return Ok((text, "standard input".into()));
    }
    if let Some(path) = spec.strip_prefix('@') {
        let text = std::fs::read(path)
            .map_err(|e| CliError::usage(format!("cannot read --args file {path:?}: {e}")))?;
        return Ok((text, format!("file {path:?}")));
    }
    Ok((spec.as_bytes().to_vec(), "inline".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(spec: &str) -> String {
        match parse_args(spec) {
            Ok(v) => panic!("accepted: {v}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn errors_do_not_echo_the_input() {
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(50_000), "]".repeat(50_000));
        let m = message(&deep);
        assert!(m.contains("nests more than 513 levels"), "{m}");
        assert!(m.len() < 300 && !m.contains("[[["), "{m}");
        let m = message("{\"a\": 1");
        assert!(m.contains("not valid JSON") && !m.contains("\"a\""), "{m}");
        let m = message("[1, 2]");
        assert!(m.contains("got an array"), "{m}");
    }

    #[test]
    fn args_come_from_a_file_when_prefixed_with_at() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("args.json");
        std::fs::write(&path, br#"{"a": 2, "b": 3}"#).unwrap();
        let v = parse_args(&format!("@{}", path.display())).unwrap();
        assert_eq!(v, serde_json::json!({"a": 2, "b": 3}));
        let m = message(&format!("@{}", dir.path().join("missing.json").display()));
        assert!(m.contains("cannot read --args file"), "{m}");
    }
}
