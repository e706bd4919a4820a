//! The seeds' configuration keys acting on real pools: pooling_enabled, the TCP host bridge
//! (grpc_host/grpc_port), thread limits and grpc_log_level in the workers' environment.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use snakepit_core::config::{HostBridgeListen, SnakepitConfig};
use snakepit_core::{CallOptions, ErrorKind};
use snakepit_pool::{Pool, PoolSet};
use snakepit_worker::host_bridge::{HostTool, HostTools};

/// The environment of a live process, from `/proc/<pid>/environ`.
fn environment_of(pid: u32) -> std::collections::BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn pooling_disabled_starts_nothing_and_refuses_calls_naming_the_key() {
    let config = SnakepitConfig::from_toml_str(
        r#"
        pooling_enabled = false
        [[pools]]
        name = "default"
        pool_size = 1
        "#,
    )
    .unwrap();
    let set = PoolSet::start(&config).await.unwrap();
    assert_eq!(set.names().count(), 0);
    let err = set
        .execute("default", "ping", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pool);
    assert!(err.to_string().contains("pooling_enabled = false"), "{err}");
    set.shutdown().await;
}

#[tokio::test]
async fn pooling_disabled_still_validates_the_configuration() {
    let config = SnakepitConfig::from_toml_str(
        r#"
        pooling_enabled = false
        [[pools]]
        name = "default"
        pool_size = 0
        "#,
    )
    .unwrap();
    let err = PoolSet::start(&config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn grpc_port_zero_serves_host_tools_over_loopback_tcp() {
    let tools = HostTools::default();
    tools.register(HostTool::new("double", "Double n.", |call| async move {
        let n = call
            .args
            .get("n")
            .and_then(serde_json::Value::as_i64)
            .ok_or("missing n")?;
        Ok(json!(n * 2))
    }));
    let mut config = SnakepitConfig::from_toml_str("grpc_port = 0\ngrpc_host = \"127.0.0.1\"")
        .unwrap()
        .pool_config("default")
        .unwrap();
    assert!(matches!(
        config.host_bridge,
        HostBridgeListen::Tcp { port: 0, .. }
    ));
    config.pool_size = 1;
    config.heartbeat.enabled = false;
    config.startup_timeout = Duration::from_secs(60);
    // Spawned, so the worker's own command line shows the address it was given.
    config.start_mode = snakepit_core::config::StartMode::Spawn;
    let pool = Pool::start_with_host_tools(config, tools).await.unwrap();
    pool.await_ready(Duration::from_secs(90)).await.unwrap();
    let worker = &pool.list_workers()[0];
    let env = environment_of(worker.pid);
    let cmdline =
        String::from_utf8(std::fs::read(format!("/proc/{}/cmdline", worker.pid)).unwrap())
            .unwrap()
            .replace('\0', " ");
    assert!(
        cmdline.contains("--elixir-address 127.0.0.1:"),
        "worker was not given the TCP address: {cmdline}"
    );
    assert!(env.contains_key("SNAKEPIT_AUTH_TOKEN"));
    let out = pool
        .execute(
            "call_host",
            json!({"tool": "double", "args": {"n": 21}}),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.json, json!(42));
    pool.shutdown().await;
}

#[tokio::test]
async fn thread_limits_and_grpc_log_level_reach_the_worker_environment() {
    let mut config = SnakepitConfig::from_toml_str(
        r#"
        grpc_log_level = "debug"
        thread_limits = { omp = 3 }
        [[pools]]
        name = "default"
        pool_size = 1
        adapter_env = { MKL_NUM_THREADS = "5" }
        "#,
    )
    .unwrap()
    .pool_config("default")
    .unwrap();
    config.heartbeat.enabled = false;
    config.startup_timeout = Duration::from_secs(60);
    let pool = Pool::start(config).await.unwrap();
    pool.await_ready(Duration::from_secs(90)).await.unwrap();
    let env = environment_of(pool.list_workers()[0].pid);
    assert_eq!(env["OMP_NUM_THREADS"], "3");
    assert_eq!(env["OPENBLAS_NUM_THREADS"], "1");
    // adapter_env wins over the thread-limit defaults.
    assert_eq!(env["MKL_NUM_THREADS"], "5");
    assert_eq!(env["GRPC_VERBOSITY"], "DEBUG");
    pool.shutdown().await;
}
