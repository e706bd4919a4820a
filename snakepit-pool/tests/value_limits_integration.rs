//! Values and durations at and past their limits, through a pool of real Python workers on both transports.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::time::Duration;

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use snakepit_core::json_limits::{dispose_value, value_depth, MAX_VALUE_DEPTH};
use snakepit_core::{CallOptions, ErrorKind, ToolCall, MAX_CALL_TIMEOUT};
use snakepit_pool::Pool;
use support::ready_pool_on;

/// A value `depth` levels deep whose containers alternate between arrays and objects as
/// `shape` says (bit i set: level i is an object), built without recursion.
fn nested(depth: usize, shape: u64) -> Value {
    let mut v = json!("leaf");
    for level in 0..depth {
        v = if shape >> (level % 64) & 1 == 1 {
            Value::Object(Map::from_iter([(format!("k{level}"), v)]))
        } else {
            Value::Array(vec![json!(level), v])
        };
    }
    v
}

/// `{"x": value}` without `json!`, which would serialise `value` recursively.
fn args_x(value: Value) -> Value {
    Value::Object(Map::from_iter([("x".to_owned(), value)]))
}

/// The timeout names the call's limit (the worker's own deadline may round it down a little).
fn assert_reports_about_two_seconds(err: &snakepit_core::Error) {
    match err {
        snakepit_core::Error::Timeout { timeout, .. } => assert!(
            *timeout >= Duration::from_millis(1_900) && *timeout <= Duration::from_millis(2_000),
            "{err}"
        ),
        other => panic!("not a timeout: {other}"),
    }
}

async fn assert_serves(pool: &Pool) {
    let pong = pool
        .execute("ping", json!({}), CallOptions::default())
        .await
        .expect("the pool still serves");
    assert_eq!(pong.json["status"], "ok");
}

on_both_transports! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deep_parameters_are_a_validation_error_and_the_pool_keeps_serving(transport: TransportKind) {
    let pool = ready_pool_on(transport, 1, |_| {}).await;
    for depth in [MAX_VALUE_DEPTH + 1, 10_000, 100_000] {
        let err = pool
            .execute(
                "echo",
                args_x(nested(depth, 0b1010)),
                CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
        assert!(
            err.to_string()
                .contains(&format!("argument 'x' nests {depth} levels")),
            "{err}"
        );
        // A call assembled field by field is checked at the pool's edge too.
        let mut call = ToolCall::new("echo", json!({})).unwrap();
        call.args.insert("deep".into(), nested(depth, 0));
        let err = pool.execute_call(call).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
        let err = match pool
            .execute_stream(
                "stream_progress",
                args_x(nested(depth, 1)),
                CallOptions::default(),
            )
            .await
        {
            Ok(_) => panic!("a too-deep stream call was accepted"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
    }
    assert_serves(&pool).await;
    pool.shutdown().await;
}
}

on_both_transports! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_nested_two_hundred_deep_come_back_as_json(transport: TransportKind) {
    let pool = ready_pool_on(transport, 1, |_| {}).await;
    let sent = nested(200, 0xF0F0);
    let result = pool
        .execute("echo", args_x(sent.clone()), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(value_depth(&result.json), 201);
    assert_eq!(result.json["x"], sent);
    // A result deeper than the limit is a typed error naming the result, not a string.
    let err = pool
        .execute(
            "echo",
            args_x(nested(MAX_VALUE_DEPTH, 0)),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
    assert!(err.to_string().contains("result of tool 'echo'"), "{err}");
    assert_serves(&pool).await;
    pool.shutdown().await;
}
}

on_both_transports! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timeouts_report_the_duration_that_passed_and_streams_count_their_errors(transport: TransportKind) {
    let pool = ready_pool_on(transport, 1, |_| {}).await;
    let opts = CallOptions::default().with_timeout(Duration::from_millis(2_000));
    let before = pool.stats().errors;
    let mut chunks = pool
        .execute_stream(
            "stream_progress",
            json!({"steps": 100, "delay_ms": 200}),
            opts.clone(),
        )
        .await
        .unwrap();
    let first = chunks.next().await.expect("a first chunk").unwrap();
    assert_eq!(first.json.unwrap()["step"], 1);
    let mut last = None;
    while let Some(item) = chunks.next().await {
        last = Some(item);
    }
    let err = last.expect("more items").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_reports_about_two_seconds(&err);
    assert_eq!(
        pool.stats().errors,
        before + 1,
        "the stream's error is counted"
    );

    let err = pool
        .execute("sleep", json!({"ms": 20_000}), opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_reports_about_two_seconds(&err);
    pool.shutdown().await;
}
}

/// One random case: a value of random depth and shape, a random timeout.
#[derive(Debug)]
struct Case {
    depth: usize,
    shape: u64,
    timeout: Option<Duration>,
}

fn random_case(rng: &mut rand::rngs::StdRng) -> Case {
    let depth = match rng.gen_range(0..4) {
        0 => rng.gen_range(0..=130),
        1 => rng.gen_range(130..=MAX_VALUE_DEPTH + 2),
        2 => rng.gen_range(MAX_VALUE_DEPTH..20_000),
        _ => rng.gen_range(20_000..=100_000),
    };
    let timeout = match rng.gen_range(0..6) {
        0 => None,
        1 => Some(Duration::from_nanos(rng.gen_range(0..1_000_000))),
        2 => Some(Duration::from_millis(rng.gen_range(1..50))),
        3 => Some(Duration::from_millis(rng.gen_range(5_000..60_000))),
        4 => Some(MAX_CALL_TIMEOUT + Duration::from_millis(rng.gen_range(1..u32::MAX as u64))),
        _ => Some(Duration::from_secs(rng.gen::<u64>()).max(Duration::from_secs(1))),
    };
    Case {
        depth,
        shape: rng.gen(),
        timeout,
    }
}

on_both_transports! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_depths_and_durations_end_in_a_result_or_a_typed_error(transport: TransportKind) {
    let seed: u64 = std::env::var("SNAKEPIT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("fuzz seed {seed} (rerun with SNAKEPIT_FUZZ_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Timed-out workers are replaced; a long queue timeout keeps the next call waiting for one.
    let pool = ready_pool_on(transport, 2, |c| c.queue_timeout = Duration::from_secs(120)).await;
    for _ in 0..40 {
        let case = random_case(&mut rng);
        let mut opts = CallOptions::default();
        if let Some(t) = case.timeout {
            opts = opts.with_timeout(t);
        }
        let timeout_ok = case
            .timeout
            .is_none_or(|t| t >= Duration::from_millis(1) && t <= MAX_CALL_TIMEOUT);
        let sent = nested(case.depth, case.shape);
        let expected = (case.depth <= 300).then(|| sent.clone());
        match pool.execute("echo", args_x(sent), opts).await {
            Ok(payload) => {
                assert!(
                    timeout_ok && case.depth < MAX_VALUE_DEPTH,
                    "{case:?} accepted"
                );
                if let Some(v) = expected {
                    assert_eq!(payload.json["x"], v, "{case:?}");
                }
                dispose_value(payload.json);
            }
            Err(e) => {
                let allowed = if !timeout_ok || case.depth > MAX_VALUE_DEPTH {
                    e.kind() == ErrorKind::Validation
                } else if case.depth == MAX_VALUE_DEPTH {
                    // The echoed result is one level deeper than the argument.
                    e.kind() == ErrorKind::Validation && e.to_string().contains("result of tool")
                } else {
                    // A valid call may still run out of a tiny timeout.
                    e.kind() == ErrorKind::Timeout
                };
                assert!(allowed, "{case:?}: {e}");
            }
        }
    }
    assert_serves(&pool).await;
    pool.shutdown().await;
}
}
