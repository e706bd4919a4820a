//! Tests of configuration parsing, defaults and validation.

use std::time::Duration;

use super::*;

fn pools(text: &str) -> Result<Vec<PoolConfig>, ConfigError> {
    SnakepitConfig::from_toml_str(text)?.pool_configs()
}

#[test]
fn embedded_default_is_one_showcase_pool() {
    let cfg = SnakepitConfig::from_toml_str(EMBEDDED_DEFAULT).unwrap();
    let pools = cfg.pool_configs().unwrap();
    assert_eq!(pools.len(), 1);
    let p = &pools[0];
    assert_eq!(p.name, "default");
    assert_eq!(p.adapter_spec, DEFAULT_ADAPTER);
    assert_eq!(
        p.adapter_args,
        vec!["--adapter".to_string(), DEFAULT_ADAPTER.to_string()]
    );
    assert_eq!(p.pool_size, 2);
    assert_eq!(cfg.pooling_enabled, Some(true));
}

#[test]
fn defaults_follow_the_seeds() {
    let p = &pools("").unwrap()[0];
    assert_eq!(p.name, "default");
    assert_eq!(p.worker_profile, WorkerProfile::Process);
    assert_eq!(p.transport, TransportKind::Fast);
    assert_eq!(p.max_message_bytes, 256 << 20);
    assert_eq!(p.startup_batch_size, 8);
    assert_eq!(p.startup_batch_delay, Duration::from_millis(750));
    assert_eq!(p.startup_timeout, Duration::from_millis(10_000));
    assert_eq!(p.queue_timeout, Duration::from_millis(5_000));
    assert_eq!(p.max_queue_size, 1_000);
    assert_eq!(p.graceful_shutdown_timeout, Duration::from_millis(6_000));
    assert_eq!(p.execute_timeout, Duration::from_millis(60_000));
    assert_eq!(p.stream_timeout, Duration::from_millis(300_000));
    assert_eq!(p.threads_per_worker, 10);
    assert_eq!(p.capacity_per_worker(), 1);
    assert_eq!(p.worker_ttl, None);
    assert_eq!(p.worker_max_requests, None);
    assert_eq!(p.heartbeat, HeartbeatConfig::default());
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(p.pool_size, cpus * 2);
}

#[test]
fn multi_pool_form_with_overrides_and_globals() {
    let ps = pools(
        r#"
        pool_queue_timeout = 1234
        [heartbeat]
        ping_interval_ms = 5000
        [[pools]]
        name = "default"
        pool_size = 3
        [[pools]]
        name = "ml"
        worker_profile = "thread"
        transport = "grpc"
        threads_per_worker = 16
        pool_size = 4
        adapter_args = ["--adapter", "myapp.ml.InferenceAdapter"]
        adapter_env = [["CUDA_VISIBLE_DEVICES", "0"]]
        worker_ttl = { value = 2, unit = "hours" }
        worker_max_requests = 1000
        [pools.heartbeat]
        dependent = false
        "#,
    )
    .unwrap();
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].queue_timeout, Duration::from_millis(1234));
    assert_eq!(ps[0].heartbeat.ping_interval, Duration::from_millis(5000));
    let ml = &ps[1];
    assert_eq!(ml.adapter_spec, "myapp.ml.InferenceAdapter");
    assert_eq!(ml.capacity_per_worker(), 16);
    assert_eq!(
        ml.adapter_env
            .get("CUDA_VISIBLE_DEVICES")
            .map(String::as_str),
        Some("0")
    );
    assert_eq!(ml.worker_ttl, Some(Duration::from_secs(7200)));
    assert_eq!(ml.worker_max_requests, Some(1000));
    assert!(!ml.heartbeat.dependent);
    assert_eq!(ml.transport, TransportKind::Grpc);
    let custom = pools("[[pools]]\nname = \"o\"\nserver_script = \"grpc_server.py\"\n").unwrap();
    assert_eq!(custom[0].transport, TransportKind::Grpc);
    assert_eq!(ml.heartbeat.ping_interval, Duration::from_millis(5000));
}

#[test]
fn legacy_pool_config_becomes_default_pool() {
    let ps = pools("pool_size = 5\n[pool_config]\nstartup_batch_size = 2\n").unwrap();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].name, "default");
    assert_eq!(ps[0].pool_size, 5);
    assert_eq!(ps[0].startup_batch_size, 2);
}

#[test]
fn unknown_key_is_named() {
    let err = pools("[[pools]]\nname = \"x\"\npool_sise = 3\n").unwrap_err();
    assert!(err.to_string().contains("pool_sise"), "{err}");
}

#[test]
fn invalid_values_name_key_value_and_allowed() {
    let err = pools("[[pools]]\nname = \"a\"\npool_size = 0\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config value for `pools[a].pool_size`: 0 (an integer from 1 to 1000)"
    );
    let err = pools("[[pools]]\nname = \"a\"\nworker_ttl = \"forever\"\n").unwrap_err();
    assert!(err.to_string().contains("pools[a].worker_ttl"), "{err}");
    let err = pools("[[pools]]\nname = \"a\"\nadapter_spec = \"not a class\"\n").unwrap_err();
    assert!(err.to_string().contains("adapter_spec"), "{err}");
    let err = pools("[[pools]]\nname = \"a\"\ntransport = \"carrier-pigeon\"\n").unwrap_err();
    assert!(
        err.to_string().contains("transport") && err.to_string().contains("grpc"),
        "{err}"
    );
    let err = pools("[[pools]]\nname = \"a\"\nmax_message_bytes = 10\n").unwrap_err();
    assert!(
        err.to_string().contains("pools[a].max_message_bytes"),
        "{err}"
    );
    let err = pools("[[pools]]\nname = \"a\"\nworker_profile = \"fiber\"\n").unwrap_err();
    assert!(err.to_string().contains("worker_profile"), "{err}");
    let err = pools("[[pools]]\npool_size = 1\n").unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
    let err = pools("[[pools]]\nname = \"a\"\n[[pools]]\nname = \"a\"\n").unwrap_err();
    assert!(
        err.to_string().contains("a name no other pool uses"),
        "{err}"
    );
}

#[test]
fn pipeline_depth_defaults_to_one_and_bad_depths_name_the_key_and_why() {
    let p = pools("[[pools]]\nname = \"a\"\n").unwrap().remove(0);
    assert_eq!((p.pipeline_depth, p.capacity_per_worker()), (1, 1));
    let p = pools("[[pools]]\nname = \"a\"\npipeline_depth = 4\n")
        .unwrap()
        .remove(0);
    assert_eq!((p.pipeline_depth, p.capacity_per_worker()), (4, 4));
    for (extra, expected) in [
        ("pipeline_depth = 0", "an integer from 1 to 64"),
        ("pipeline_depth = 65", "an integer from 1 to 64"),
        ("pipeline_depth = 2\nworker_profile = \"thread\"", "threads_per_worker"),
        ("pipeline_depth = 2\nserver_script = \"my_server.py\"", "snakepit_bridge.server"),
        ("pipeline_depth = 2\nserver_module = \"my.server\"", "snakepit_bridge.server"),
        (
            "pipeline_depth = 2\nlaunch_contract = \"snakepit\"\nstart_mode = \"spawn\"\ntransport = \"grpc\"",
            "snakepit_bridge.server",
        ),
    ] {
        let err = pools(&format!("[[pools]]\nname = \"a\"\n{extra}\n")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("pools[a].pipeline_depth") && text.contains(expected),
            "{extra}: {text}"
        );
    }
}

#[test]
fn adapter_spec_and_args_must_agree() {
    let err = pools("[[pools]]\nname = \"a\"\nadapter_spec = \"x.A\"\nadapter_args = [\"--adapter\", \"x.B\"]\n").unwrap_err();
    assert!(err.to_string().contains("x.B"), "{err}");
    let err = pools("[[pools]]\nname = \"a\"\nadapter_args = [\"--adapter\"]\n").unwrap_err();
    assert!(err.to_string().contains("adapter_args"), "{err}");
}

#[test]
fn pool_lookup_names_the_configured_pools() {
    let cfg = SnakepitConfig::from_toml_str("[[pools]]\nname = \"a\"\n").unwrap();
    let err = cfg.pool_config("b").unwrap_err();
    assert_eq!(err.to_string(), "no pool named 'b' (configured pools: a)");
    assert_eq!(cfg.pool_config("a").unwrap().name, "a");
}

#[test]
fn showcase_pool_is_valid() {
    let p = PoolConfig::showcase(3);
    assert_eq!(p.pool_size, 3);
    assert_eq!(p.adapter_spec, DEFAULT_ADAPTER);
}

#[test]
fn resilience_tables_merge_global_under_pool() {
    let ps = pools(
        r#"
        [circuit_breaker]
        failure_threshold = 3
        reset_timeout_ms = 1000
        [[pools]]
        name = "a"
        [pools.circuit_breaker]
        failure_threshold = 7
        [pools.retry]
        max_attempts = 2
        [[pools]]
        name = "b"
        "#,
    )
    .unwrap();
    let a = &ps[0].resilience;
    assert_eq!(
        a["circuit_breaker"]["failure_threshold"].as_integer(),
        Some(7)
    );
    assert_eq!(
        a["circuit_breaker"]["reset_timeout_ms"].as_integer(),
        Some(1000)
    );
    assert_eq!(a["retry"]["max_attempts"].as_integer(), Some(2));
    let b = &ps[1].resilience;
    assert_eq!(
        b["circuit_breaker"]["failure_threshold"].as_integer(),
        Some(3)
    );
    assert!(b.get("retry").is_none());
    assert!(pools("").unwrap()[0].resilience.is_empty());
}

#[test]
fn gpu_profiler_defaults_follow_the_seeds_and_bad_values_are_named() {
    let none = SnakepitConfig::from_toml_str("").unwrap();
    assert_eq!(
        none.gpu_profiler_settings().unwrap(),
        GpuProfilerSettings {
            enabled: true,
            interval: Duration::from_millis(5000)
        }
    );
    let set =
        SnakepitConfig::from_toml_str("gpu_profiler = { enabled = false, interval_ms = 250 }")
            .unwrap();
    assert_eq!(
        set.gpu_profiler_settings().unwrap(),
        GpuProfilerSettings {
            enabled: false,
            interval: Duration::from_millis(250)
        }
    );
    let zero = SnakepitConfig::from_toml_str("gpu_profiler = { interval_ms = 0 }").unwrap();
    assert_eq!(
        zero.gpu_profiler_settings().unwrap_err().to_string(),
        "invalid config value for `gpu_profiler.interval_ms`: 0 (an interval of at least 1 ms; the default is 5000)"
    );
    let typo = SnakepitConfig::from_toml_str("gpu_profiler = { interval = 10 }").unwrap_err();
    assert!(typo.to_string().contains("interval"), "{typo}");
}

#[test]
fn launch_contract_defaults_to_native_and_accepts_snakepit() {
    assert_eq!(
        pools("").unwrap()[0].launch_contract,
        LaunchContract::Native
    );
    let p = &pools("[[pools]]\nname = \"orig\"\nlaunch_contract = \"snakepit\"\n").unwrap()[0];
    assert_eq!(p.launch_contract, LaunchContract::Snakepit);
    assert_eq!(
        p.transport,
        TransportKind::Grpc,
        "the original speaks gRPC only"
    );
    let err = pools("[[pools]]\nname = \"x\"\nlaunch_contract = \"elixir\"\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("launch_contract") && text.contains("native") && text.contains("snakepit"),
        "{text}"
    );
}

#[test]
fn snakepit_contract_rejects_the_thread_profile_naming_key_value_and_what_is_allowed() {
    let err = pools(
        "[[pools]]\nname = \"orig\"\nlaunch_contract = \"snakepit\"\nworker_profile = \"thread\"\n",
    )
    .unwrap_err();
    match err {
        ConfigError::Invalid {
            key,
            value,
            allowed,
        } => {
            assert_eq!(key, "pools[orig].worker_profile");
            assert_eq!(value, "\"thread\"");
            assert!(
                allowed.contains("launch_contract = \"native\""),
                "{allowed}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn snakepit_contract_spawns_its_workers_and_refuses_the_zygote_naming_key_value_and_what_is_allowed(
) {
    // A global start_mode = "zygote" is for our own server; the original's is spawned.
    let p = &pools(
        "start_mode = \"zygote\"\n[[pools]]\nname = \"orig\"\nlaunch_contract = \"snakepit\"\n",
    )
    .unwrap()[0];
    assert_eq!(p.start_mode, StartMode::Spawn);
    let err = pools(
        "[[pools]]\nname = \"orig\"\nlaunch_contract = \"snakepit\"\nstart_mode = \"zygote\"\n",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("pools[orig].start_mode"), "{text}");
    assert!(text.contains("\"zygote\""), "{text}");
    assert!(
        text.contains("\"spawn\" with launch_contract = \"snakepit\""),
        "{text}"
    );
    // Built in code, the same combination is refused by validate (Pool::start calls it).
    let mut code = PoolConfig::showcase(1);
    code.launch_contract = LaunchContract::Snakepit;
    code.transport = TransportKind::Grpc;
    code.start_mode = StartMode::Zygote;
    assert!(code
        .validate()
        .unwrap_err()
        .to_string()
        .contains("start_mode"));
    code.start_mode = StartMode::Spawn;
    code.validate().unwrap();
}

#[test]
fn snakepit_contract_with_the_fast_transport_is_rejected_naming_key_value_and_what_is_allowed() {
    let err =
        pools("[[pools]]\nname = \"orig\"\nlaunch_contract = \"snakepit\"\ntransport = \"fast\"\n")
            .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("pools[orig].transport"), "{text}");
    assert!(text.contains("\"fast\""), "{text}");
    assert!(
        text.contains("\"grpc\" with launch_contract = \"snakepit\""),
        "{text}"
    );
}

#[test]
fn durations_beyond_thirty_days_are_refused_with_the_key() {
    for key in [
        "pool_startup_timeout = 360000000000000",
        "execute_timeout_ms = 9223372036854775807",
        "graceful_shutdown_timeout_ms = 2592000001",
        "heartbeat = { timeout_ms = 99999999999 }",
    ] {
        let err = pools(&format!("[[pools]]\nname = \"p\"\n{key}\n")).unwrap_err();
        let name = key.split([' ', '=']).next().unwrap_or_default();
        assert!(err.to_string().contains(name), "{key}: {err}");
        assert!(err.to_string().contains("30 days"), "{key}: {err}");
    }
    assert!(pools("[[pools]]\nname = \"p\"\nexecute_timeout_ms = 2592000000\n").is_ok());
}

#[test]
fn python_runtime_and_packages_take_both_forms() {
    use super::{PythonInstaller, PythonRuntime};
    let p =
        &pools("python_runtime = \"managed\"\npython_packages = [\"numpy>=1.26\"]\n").unwrap()[0];
    assert_eq!(p.python_env.runtime, PythonRuntime::Managed);
    assert_eq!(p.python_env.packages, vec!["numpy>=1.26".to_owned()]);
    let text = "python_runtime = { strategy = \"system\", version = \"3.12\" }\n\
                python_packages = { requirements = [\"scipy~=1.11\"], installer = \"uv\", timeout_ms = 5000, env_dir = \"/tmp/e\" }\n";
    let p = &pools(text).unwrap()[0];
    assert_eq!(p.python_env.runtime, PythonRuntime::System);
    assert_eq!(p.python_env.version.as_deref(), Some("3.12"));
    assert_eq!(p.python_env.installer, Some(PythonInstaller::Uv));
    assert_eq!(
        p.python_env.install_timeout,
        std::time::Duration::from_secs(5)
    );
    assert!(pools("python_runtime = \"conda\"\n").is_err());
    let err = pools("python_packages = [\">=1\"]\n").unwrap_err();
    assert!(err.to_string().contains("python_packages"), "{err}");
    assert_eq!(
        super::requirement_name("numpy[extra]>=1.26; python_version>'3'"),
        "numpy"
    );
}

#[test]
fn start_mode_and_preload_per_pool_with_a_global_default() {
    let text = r#"
start_mode = "spawn"

[[pools]]
name = "forked"
start_mode = "zygote"
preload = ["json", "email.mime"]

[[pools]]
name = "plain"
"#;
    let ps = pools(text).unwrap();
    assert_eq!(ps[0].start_mode, StartMode::Zygote);
    assert_eq!(ps[0].preload, vec!["json".to_string(), "email.mime".into()]);
    assert_eq!(ps[1].start_mode, StartMode::Spawn);
    assert!(ps[1].preload.is_empty());
    assert_eq!(pools("").unwrap()[0].start_mode, StartMode::default());
}

#[test]
fn bad_start_mode_and_preload_are_rejected_with_the_key() {
    let err = pools("[[pools]]\nname = \"p\"\nstart_mode = \"fork\"\n").unwrap_err();
    assert!(err.to_string().contains("start_mode"), "{err}");
    let err = pools("[[pools]]\nname = \"p\"\npreload = [\"numpy\", \"-rf\"]\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("pools[p].preload") && text.contains("-rf"),
        "{text}"
    );
}
