use super::*;
use serde_json::json;

/// A value `depth` levels deep: arrays inside arrays around one number.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

/// Runs `f` on a thread with tokio's default worker stack (2 MiB).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the closure finished without overflowing");
}

#[test]
fn depth_counts_containers_only() {
    assert_eq!(value_depth(&json!(1)), 0);
    assert_eq!(value_depth(&json!([])), 1);
    assert_eq!(value_depth(&json!({"a": [1, {"b": []}], "c": 2})), 4);
    assert_eq!(value_depth(&nested(300)), 300);
    assert_eq!(text_depth(br#"{"a": "[[[[", "b": [1, "\"]"]}"#), 2);
}

#[test]
fn values_of_any_depth_are_measured_and_disposed_without_recursion() {
    on_small_stack(|| {
        let v = nested(100_000);
        assert_eq!(value_depth(&v), 100_000);
        dispose_value(v);
    });
}

#[test]
fn values_at_the_limit_survive_serde_on_a_small_stack() {
    on_small_stack(|| {
        let v = nested(MAX_VALUE_DEPTH);
        let text = serde_json::to_vec(&v).expect("serialise");
        let back = parse_json_limited(&text).expect("parse at the limit");
        assert_eq!(back, v.clone());
        assert_eq!(value_depth(&back), MAX_VALUE_DEPTH);
    });
}

#[test]
fn deeper_text_is_refused_before_parsing() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = parse_json_limited(text.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            JsonTextError::TooDeep {
                limit: MAX_VALUE_DEPTH
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("[["), "{err}");
    let at_200 = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(
        value_depth(&parse_json_limited(at_200.as_bytes()).unwrap()),
        200
    );
    assert!(matches!(
        parse_json_limited(b"[1,"),
        Err(JsonTextError::Syntax(_))
    ));
    assert!(matches!(
        parse_json_limited(b"[1] x"),
        Err(JsonTextError::Syntax(_))
    ));
}
