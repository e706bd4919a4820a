use super::*;

#[test]
fn events_and_refreshes_become_series_with_bounded_labels() {
    let bus = Telemetry::new();
    let m = PrometheusMetrics::new();
    m.attach(&bus, "metrics").unwrap();
    for _ in 0..3 {
        bus.emit(
            &events::REQUEST_EXECUTED,
            &[("duration_us", 1500u64.into())],
            &[
                ("pool", "p"),
                ("worker_id", "w1"),
                ("command", "add"),
                ("success", "true"),
            ],
        );
    }
    bus.emit(
        &events::GRPC_CALL_EXCEPTION,
        &[("duration", 1u64.into())],
        &[("pool_name", "p"), ("error_kind", "python_exception")],
    );
    bus.emit(
        &events::WORKER_CRASH,
        &[],
        &[("pool", "p"), ("worker_id", "w1")],
    );
    bus.emit(
        &events::PYTHON_TELEMETRY_DROPPED,
        &[("dropped", 7u64.into())],
        &[("pool_name", "p")],
    );
    bus.emit(&events::PYTHON_CUSTOM, &[], &[("event", "anything.at.all")]);
    m.refresh(
        &[(
            "p".into(),
            PoolGauges {
                size: 2,
                workers: 2,
                available: 1,
                busy: 1,
                queue_depth: 4,
            },
        )],
        &[WorkerGauges {
            pool: "p".into(),
            worker: "w1".into(),
            rss_bytes: Some(1024),
            breaker: Some("open"),
        }],
    );
    let text = m.encode();
    for line in [
        r#"snakepit_call_duration_seconds_count{pool="p",tool="add",success="true"} 3"#,
        r#"snakepit_errors_total{pool="p",kind="python_exception"} 1"#,
        r#"snakepit_worker_crashes_total{pool="p"} 1"#,
        r#"snakepit_python_events_dropped_total{pool="p"} 7"#,
        r#"snakepit_python_events_total{event="snakepit.python.custom"} 1"#,
        r#"snakepit_pool_queue_depth{pool="p"} 4"#,
        r#"snakepit_pool_busy_workers{pool="p"} 1"#,
        r#"snakepit_python_rss_bytes{pool="p",worker="w1"} 1024"#,
        r#"snakepit_circuit_breaker_state{pool="p",worker="w1"} 2"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("anything.at.all"));
    m.refresh(&[], &[]);
    assert!(!m.encode().contains("worker=\"w1\""));
}

#[test]
fn tool_labels_stop_growing_at_the_limit() {
    let m = PrometheusMetrics::new();
    for i in 0..(MAX_TOOL_LABELS + 10) {
        assert_eq!(
            m.tool_label("p", &format!("t{i}")),
            if i < MAX_TOOL_LABELS {
                format!("t{i}")
            } else {
                "_other".into()
            }
        );
    }
    assert_eq!(m.tool_label("p", "t0"), "t0");
}
