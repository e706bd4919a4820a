//! Tests of the seeds' host-wide keys: each works, translates, or is refused naming why.

use std::time::Duration;

use super::*;

fn pools(text: &str) -> Result<Vec<PoolConfig>, ConfigError> {
    SnakepitConfig::from_toml_str(text)?.pool_configs()
}

fn refused(text: &str) -> (String, String) {
    match pools(text) {
        Err(ConfigError::Invalid { key, allowed, .. }) => (key, allowed),
        Err(ConfigError::Missing { key, hint }) => (key, hint),
        other => panic!("expected a refusal of {text:?}, got {other:?}"),
    }
}

#[test]
fn the_seeds_complete_example_keys_all_parse() {
    let ps = pools(
        r#"
        pooling_enabled = true
        adapter_module = "Snakepit.Adapters.GRPCPython"
        capacity_strategy = "pool"
        pool_startup_timeout = 30000
        grpc_port = 0
        grpc_log_level = "error"
        log_python_output = false
        library_mode = true
        cleanup_on_stop = true
        cleanup_on_stop_timeout_ms = 3000
        cleanup_poll_interval_ms = 25
        cleanup_retry_interval_ms = 100
        cleanup_max_retries = 2
        rogue_cleanup = { enabled = true }
        [[pools]]
        name = "default"
        adapter_module = "Snakepit.Adapters.GRPCPython"
        pool_identifier = "general"
        "#,
    )
    .unwrap();
    let p = &ps[0];
    assert_eq!(p.pool_identifier.as_deref(), Some("general"));
    assert_eq!(
        p.host_bridge,
        HostBridgeListen::Tcp {
            host: "localhost".into(),
            port: 0
        }
    );
    assert_eq!(p.cleanup.timeout, Duration::from_millis(3000));
    assert_eq!(p.cleanup.poll_interval, Duration::from_millis(25));
    assert_eq!(p.cleanup.retry_interval, Duration::from_millis(100));
    assert_eq!(p.cleanup.max_retries, 2);
    assert!(p.cleanup.on_stop && p.cleanup.rogue_cleanup);
}

#[test]
fn defaults_keep_the_private_socket_and_quiet_workers() {
    let p = &pools("").unwrap()[0];
    assert_eq!(p.host_bridge, HostBridgeListen::PrivateSocket);
    assert_eq!(p.worker_output, WorkerOutput::default());
    assert_eq!(p.worker_output.grpc_verbosity, "ERROR");
    assert!(!p.worker_output.log_python_output);
    assert_eq!(p.cleanup, CleanupConfig::default());
    assert_eq!(p.pool_identifier, None);
}

#[test]
fn pooling_enabled_defaults_to_true_and_false_is_kept() {
    assert!(SnakepitConfig::from_toml_str("").unwrap().pooling_enabled());
    let off = SnakepitConfig::from_toml_str("pooling_enabled = false").unwrap();
    assert!(!off.pooling_enabled());
}

#[test]
fn elixir_adapter_modules_other_than_grpc_python_are_refused() {
    let (key, why) = refused(r#"adapter_module = "Snakepit.Adapters.Node""#);
    assert_eq!(key, "adapter_module");
    assert!(why.contains("adapter_spec"), "{why}");
    let (key, _) = refused(
        r#"
        [[pools]]
        name = "ml"
        adapter_module = "myapp.adapters.Ml"
        "#,
    );
    assert_eq!(key, "pools[ml].adapter_module");
}

#[test]
fn shared_capacity_strategies_are_refused_with_what_to_use() {
    for strategy in ["profile", "hybrid"] {
        let (key, why) = refused(&format!("capacity_strategy = {strategy:?}"));
        assert_eq!(key, "capacity_strategy");
        assert!(why.contains("pool_size"), "{why}");
    }
}

#[test]
fn grpc_host_without_a_port_is_refused() {
    let (key, hint) = refused(r#"grpc_host = "127.0.0.1""#);
    assert_eq!(key, "grpc_port");
    assert!(hint.contains("private socket"), "{hint}");
}

#[test]
fn two_pools_cannot_share_a_fixed_grpc_port() {
    let text = r#"
        grpc_port = 50051
        [[pools]]
        name = "a"
        [[pools]]
        name = "b"
        "#;
    let (key, why) = refused(text);
    assert_eq!(key, "pools[b].grpc_port");
    assert!(why.contains("pool 'a'"), "{why}");
    let own = r#"
        [[pools]]
        name = "a"
        grpc_port = 50051
        [[pools]]
        name = "b"
        grpc_port = 50052
        "#;
    assert_eq!(pools(own).unwrap().len(), 2);
}

#[test]
fn grpc_log_level_maps_to_grpc_verbosity() {
    for (level, verbosity) in [
        ("debug", "DEBUG"),
        ("info", "INFO"),
        ("warning", "ERROR"),
        ("none", "NONE"),
    ] {
        let p = &pools(&format!("grpc_log_level = {level:?}")).unwrap()[0];
        assert_eq!(p.worker_output.grpc_verbosity, verbosity);
    }
    let (key, _) = refused(r#"grpc_log_level = "loud""#);
    assert_eq!(key, "grpc_log_level");
}

#[test]
fn rogue_cleanup_can_be_turned_off_but_scripts_are_refused() {
    let p = &pools("rogue_cleanup = { enabled = false }").unwrap()[0];
    assert!(!p.cleanup.rogue_cleanup);
    let (key, why) = refused(r#"rogue_cleanup = { scripts = ["grpc_server.py"] }"#);
    assert_eq!(key, "rogue_cleanup.scripts");
    assert!(why.contains("registry"), "{why}");
}

#[test]
fn thread_limits_default_to_one_for_process_workers_and_can_be_raised() {
    let p = &pools("").unwrap()[0];
    assert_eq!(p.thread_limits["OPENBLAS_NUM_THREADS"], "1");
    assert_eq!(p.thread_limits["VECLIB_MAXIMUM_THREADS"], "1");
    let ps = pools(
        r#"
        thread_limits = { omp = 2 }
        [[pools]]
        name = "default"
        thread_limits = { openblas = 4 }
        [[pools]]
        name = "ml"
        worker_profile = "thread"
        "#,
    )
    .unwrap();
    assert_eq!(ps[0].thread_limits["OMP_NUM_THREADS"], "2");
    assert_eq!(ps[0].thread_limits["OPENBLAS_NUM_THREADS"], "4");
    assert_eq!(ps[0].thread_limits["MKL_NUM_THREADS"], "1");
    // Thread workers get only what is configured: their libraries may use the threads.
    assert_eq!(ps[1].thread_limits.len(), 1);
    assert_eq!(ps[1].thread_limits["OMP_NUM_THREADS"], "2");
    let (key, _) = refused("thread_limits = { grpc_poll_threads = 2 }");
    assert_eq!(key, "thread_limits.grpc_poll_threads");
    let (key, _) = refused("thread_limits = { mkl = 0 }");
    assert_eq!(key, "thread_limits.mkl");
}

#[test]
fn zero_cleanup_intervals_are_refused() {
    let (key, _) = refused("cleanup_poll_interval_ms = 0");
    assert_eq!(key, "cleanup_poll_interval_ms");
}
