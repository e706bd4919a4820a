//! `snakepit exec` honours the seeds' keys: pooling_enabled, log_python_output.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn exec_with_config(toml: &str, tool: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("snakepit.toml");
    std::fs::write(&cfg, toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(["exec", tool, "--config", cfg.to_str().unwrap()])
        .output()
        .expect("run snakepit")
}

#[test]
fn exec_refuses_to_run_when_pooling_is_disabled() {
    let out = exec_with_config("pooling_enabled = false\npool_size = 1\n", "ping");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pooling_enabled = false"), "{stderr}");
    assert!(stderr.contains("set pooling_enabled = true"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn log_python_output_copies_worker_lines_to_stderr_with_the_worker_id() {
    let config = r#"
        log_python_output = true
        [[pools]]
        name = "default"
        pool_size = 1
        # Output of workers forked by a zygote stays with the zygote; a spawned worker's is copied.
        start_mode = "spawn"
        adapter_env = { SNAKEPIT_LOG_LEVEL = "info" }
    "#;
    let out = exec_with_config(config, "ping");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("[default_worker_1] ") && l.contains("ready")),
        "no prefixed worker line in stderr: {stderr}"
    );
    // Without the key the same worker lines stay hidden.
    let quiet = exec_with_config(&config.replace("true", "false"), "ping");
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(quiet.status.success(), "stderr: {stderr}");
    assert!(!stderr.contains("[default_worker_1]"), "{stderr}");
}
