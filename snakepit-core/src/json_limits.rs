//! The nesting limit of JSON values that cross the host, checked and enforced without recursion.
//!
//! serde_json clones, compares, serialises and drops values recursively, so a value nested
//! tens of thousands of levels deep overflows a thread's stack. Every value that enters a pool
//! (tool arguments) or leaves a worker (results, chunks) is measured here iteratively first;
//! deeper than [`MAX_VALUE_DEPTH`] it is refused with a typed error and taken apart iteratively.

use serde::Deserialize;
use serde_json::Value;

/// How deeply a JSON value may nest: each array or object is one level, a scalar is depth 0.
///
/// 512 levels hold any real document, stay below Python's default recursion limit (1000) on
/// the worker's side, and keep serde_json's recursive code far inside a 2 MiB thread stack.
pub const MAX_VALUE_DEPTH: usize = 512;

/// Why JSON text could not become a value.
#[derive(Debug, thiserror::Error)]
pub enum JsonTextError {
    /// The text nests deeper than the limit; it was not parsed.
    #[error(
        "JSON nests more than {limit} levels deep (the limit); flatten it or send it as bytes"
    )]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The text is not JSON.
    #[error("not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
}

/// Returns the nesting depth of `value` (0 for a scalar), without recursion.
///
/// Only containers go on the work list, so a long flat array costs one pass and no allocation.
pub fn value_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = Vec::new();
    let is_container = |v: &Value| matches!(v, Value::Array(_) | Value::Object(_));
    if is_container(value) {
        stack.push((value, 1));
    }
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        let children: &mut dyn Iterator<Item = &Value> = match v {
            Value::Array(items) => &mut items.iter(),
            Value::Object(map) => &mut map.values(),
            _ => continue,
        };
        stack.extend(children.filter(|c| is_container(c)).map(|c| (c, depth + 1)));
    }
    deepest
}

/// Drops `value` without recursion, so a value of any depth can be discarded safely.
pub fn dispose_value(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Returns the nesting depth of JSON `text` without parsing it (a quick scan that skips strings).
///
/// The text need not be valid JSON; brackets inside strings do not count.
pub fn text_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses JSON `text` nested at most [`MAX_VALUE_DEPTH`] levels deep.
///
/// Deeper text is refused before parsing, so no input can exhaust the stack; serde_json's own
/// limit of 128 levels is lifted for the rest.
pub fn parse_json_limited(text: &[u8]) -> Result<Value, JsonTextError> {
    parse_json_within(text, MAX_VALUE_DEPTH)
}

/// Parses JSON `text` nested at most `limit` levels deep (see [`parse_json_limited`]).
///
/// A keyword-arguments object, for one, may nest one level more than the values it holds.
pub fn parse_json_within(text: &[u8], limit: usize) -> Result<Value, JsonTextError> {
    if text_depth(text) > limit {
        return Err(JsonTextError::TooDeep { limit });
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    de.disable_recursion_limit();
    let value = Value::deserialize(&mut de).map_err(JsonTextError::Syntax)?;
    de.end().map_err(JsonTextError::Syntax)?;
    Ok(value)
}

#[cfg(test)]
mod tests;
