//! The `snakepit` binary end to end: results on stdout, exit codes by failure class.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn snakepit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(args)
        .output()
        .expect("run snakepit")
}

/// The JSON values a streamed `exec` printed, one per line.
fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn exec_ping_prints_pong() {
    let out = snakepit(&["exec", "ping", "--pool-size", "1"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message"], "pong");
}

#[test]
fn exec_add_with_args_and_stream_lines() {
    let out = snakepit(&[
        "exec",
        "add",
        "--args",
        r#"{"a": 2, "b": 40}"#,
        "--pool-size",
        "1",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let out = snakepit(&[
        "exec",
        "stream_progress",
        "--stream",
        "--args",
        r#"{"steps": 3, "delay_ms": 1}"#,
        "--pool-size",
        "1",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(
        lines
            .iter()
            .map(|v| v["step"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn exit_codes_distinguish_tool_usage_and_infrastructure_errors() {
    let tool = snakepit(&[
        "exec",
        "fail",
        "--args",
        r#"{"message": "nope"}"#,
        "--pool-size",
        "1",
    ]);
    assert_eq!(tool.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&tool.stderr).contains("ValueError: nope"));

    let usage = snakepit(&["exec", "ping", "--args", "not json"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--args is not valid JSON"));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[pools]]\nname = \"default\"\npool_size = 1\nadapter_spec = \"no_such_mod.Adapter\"\npool_startup_timeout = 20000\n").unwrap();
    let infra = snakepit(&["exec", "ping", "--config", cfg.to_str().unwrap()]);
    assert_eq!(
        infra.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&infra.stderr)
    );
    assert!(String::from_utf8_lossy(&infra.stderr).contains("no_such_mod"));
}

#[test]
fn hardware_reports_this_machines_cpu_as_json_and_table() {
    let out = snakepit(&["hardware", "--json"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let threads = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(v["cpu"]["threads"].as_u64(), Some(threads), "{v}");
    assert!(v["platform"]
        .as_str()
        .unwrap()
        .starts_with(std::env::consts::OS));
    let table = snakepit(&["hardware"]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains(v["platform"].as_str().unwrap()));
}

#[test]
fn generated_adapter_runs_through_a_pool() {
    let dir = tempfile::tempdir().unwrap();
    let out = snakepit(&[
        "gen",
        "adapter",
        "greeter",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snippet = String::from_utf8_lossy(&out.stdout);
    let config: String = snippet
        .lines()
        .skip_while(|l| !l.starts_with("[[pools]]"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = dir.path().join("snakepit.toml");
    std::fs::write(&cfg, format!("{config}\npool_size = 1\n")).unwrap();
    let run = snakepit(&[
        "exec",
        "hello",
        "--args",
        r#"{"name": "rust"}"#,
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["greeting"], "hello, rust");
    let doctor = snakepit(&["doctor", "--config", cfg.to_str().unwrap()]);
    assert!(
        doctor.status.success(),
        "doctor: {}",
        String::from_utf8_lossy(&doctor.stdout)
    );

    let bad = snakepit(&["gen", "adapter", "not-valid"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn doctor_reports_an_adapter_that_cannot_be_imported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[pools]]\nname = \"x\"\nadapter_spec = \"missing_mod.Adapter\"\n",
    )
    .unwrap();
    let out = snakepit(&["doctor", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[  error] pool 'x' adapter") && text.contains("missing_mod"),
        "{text}"
    );
    assert!(
        text.contains("[     ok] pool 'x' transport: fast"),
        "{text}"
    );
}

/// A config with the original-style fixtures: `native` (our server, the registry adapter) and
/// `legacy` (the stand-in original server, `launch_contract = "snakepit"`).
fn original_style_config(dir: &std::path::Path) -> std::path::PathBuf {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../python/tests/original_style")
        .canonicalize()
        .unwrap();
    let f = fixtures.display();
    let cfg = dir.join("snakepit.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[pools]]
name = "native"
pool_size = 1
adapter_spec = "registry_adapter.RegistryAdapter"
adapter_env = {{ PYTHONPATH = "{f}" }}
pool_startup_timeout = 30000

[[pools]]
name = "legacy"
pool_size = 1
launch_contract = "snakepit"
server_script = "{f}/grpc_server.py"
adapter_spec = "registry_adapter.RegistryAdapter"
adapter_env = {{ PYTHONPATH = "{f}" }}
pool_startup_timeout = 30000
"#
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn original_style_adapter_and_server_work_through_exec() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = original_style_config(dir.path());
    let cfg = cfg.to_str().unwrap();
    for pool in ["native", "legacy"] {
        let out = snakepit(&["exec", "ping", "--config", cfg, "--pool", pool]);
        assert!(
            out.status.success(),
            "{pool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["message"], "pong", "{pool}");

        let out = snakepit(&[
            "exec",
            "count_up",
            "--stream",
            "--args",
            r#"{"n": 2}"#,
            "--config",
            cfg,
            "--pool",
            pool,
        ]);
        assert!(
            out.status.success(),
            "{pool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = json_lines(&out);
        assert_eq!(
            lines,
            vec![serde_json::json!({"i": 1}), serde_json::json!({"i": 2})],
            "{pool}"
        );

        let out = snakepit(&[
            "exec",
            "reserve",
            "--args",
            r#"{"qty": 5}"#,
            "--config",
            cfg,
            "--pool",
            pool,
        ]);
        assert_eq!(out.status.code(), Some(1), "{pool}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("InventoryError: only 0 of 5 items left"),
            "{pool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let out = snakepit(&[
            "exec",
            "recall",
            "--session",
            "cli-1",
            "--args",
            r#"{"key": "k"}"#,
            "--config",
            cfg,
            "--pool",
            pool,
        ]);
        assert!(
            out.status.success(),
            "{pool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["session_id"], "cli-1", "{pool}");
    }
}
