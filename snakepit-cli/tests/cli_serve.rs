//! `snakepit serve` end to end: the admin endpoint (/metrics, /health, /status, /execute),
//! `snakepit status`, and a graceful stop on SIGTERM and SIGINT with no worker left.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

const TOKEN: &str = "test-admin-token-123";

struct Serve {
    child: Child,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("snakepit.toml");
    std::fs::write(&path, body).unwrap();
    path
}

fn pool_config(adapter: &str, size: usize) -> String {
    format!(
        "pooling_enabled = true\npool_startup_timeout = 60000\n\n[[pools]]\nname = \"default\"\npool_size = {size}\nadapter_spec = \"{adapter}\"\n"
    )
}

/// Starts `snakepit serve --admin 127.0.0.1:0` and reads the admin address it prints.
fn serve(config_body: &str) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), config_body);
    let mut child = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(["serve", "--admin", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("SNAKEPIT_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let admin = loop {
        let line = lines
            .next()
            .expect("serve printed its admin address")
            .unwrap();
        if let Some(addr) = line.strip_prefix("admin listening on http://") {
            break addr.parse().unwrap();
        }
    };
    // Keep draining stdout so the host never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Serve {
        child,
        admin,
        _dir: dir,
    }
}

/// One HTTP/1.1 request; returns the status code and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// Parses Prometheus text: every sample line is `name{labels} value`; returns them by series.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        out.insert(series.to_owned(), value);
    }
    assert!(text.trim_end().ends_with("# EOF"), "no # EOF terminator");
    out
}

fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn stop_with(mut s: Serve, sig: Signal, worker_pids: &[u32]) {
    kill(Pid::from_raw(s.child.id() as i32), sig).unwrap();
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(90), || {
            status = s.child.try_wait().unwrap();
            status.is_some()
        }),
        "serve did not stop after {sig}"
    );
    assert_eq!(status.unwrap().code(), Some(0), "exit status after {sig}");
    for pid in worker_pids {
        assert!(
            wait_until(Duration::from_secs(10), || is_gone(*pid)),
            "worker {pid} left behind"
        );
    }
}

#[test]
fn serve_reports_metrics_health_and_status_and_stops_on_sigterm() {
    let s = serve(&pool_config(
        "snakepit_bridge.adapters.showcase.ShowcaseAdapter",
        2,
    ));
    assert!(
        wait_until(Duration::from_secs(120), || http(
            s.admin, "GET", "/health", None
        )
        .0 == 200),
        "never healthy: {:?}",
        http(s.admin, "GET", "/health", None)
    );
    for i in 0..3 {
        let (code, body) = http(
            s.admin,
            "POST",
            "/execute",
            Some(&json!({"tool": "add", "args": {"a": i, "b": 1}})),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["result"],
            json!(i + 1)
        );
    }
    let (code, body) = http(s.admin, "POST", "/execute", Some(&json!({"tool": "fail"})));
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("python_exception"), "{body}");

    let (code, text) = http(s.admin, "GET", "/metrics", None);
    assert_eq!(code, 200);
    let m = parse_prometheus(&text);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no series {k} in\n{text}"))
    };
    assert_eq!(
        get(r#"snakepit_call_duration_seconds_count{pool="default",tool="add",success="true"}"#),
        3.0
    );
    assert_eq!(
        get(r#"snakepit_call_duration_seconds_count{pool="default",tool="fail",success="false"}"#),
        1.0
    );
    assert_eq!(
        get(r#"snakepit_errors_total{pool="default",kind="python_exception"}"#),
        1.0
    );
    assert_eq!(get(r#"snakepit_pool_size{pool="default"}"#), 2.0);
    assert_eq!(get(r#"snakepit_pool_workers{pool="default"}"#), 2.0);
    assert_eq!(
        get(r#"snakepit_pool_available_workers{pool="default"}"#),
        2.0
    );
    assert_eq!(get(r#"snakepit_pool_busy_workers{pool="default"}"#), 0.0);
    assert_eq!(get(r#"snakepit_pool_queue_depth{pool="default"}"#), 0.0);
    assert_eq!(get(r#"snakepit_worker_spawns_total{pool="default"}"#), 2.0);
    let rss: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with("snakepit_python_rss_bytes{"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(rss.len(), 2, "{text}");
    assert!(rss.iter().all(|b| *b > 1_000_000.0), "{rss:?}");

    let (code, body) = http(s.admin, "GET", "/status", None);
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    let pool = &status["pools"][0];
    assert_eq!(pool["name"], "default");
    assert_eq!(pool["queue_depth"], 0);
    assert_eq!(pool["stats"]["requests"], 4);
    let workers = pool["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let served: u64 = workers
        .iter()
        .map(|w| w["requests_served"].as_u64().unwrap())
        .sum();
    assert_eq!(served, 3, "only successes count: {body}");
    assert!(workers
        .iter()
        .all(|w| w["state"] == "idle" && w["rss_bytes"].as_u64().unwrap() > 0));
    let pids: Vec<u32> = workers
        .iter()
        .map(|w| w["pid"].as_u64().unwrap() as u32)
        .collect();

    let out = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(["status", "--admin", &s.admin.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("pool default: 2 of 2 workers, queue 0"),
        "{table}"
    );
    for pid in &pids {
        assert!(table.contains(&pid.to_string()), "{table}");
    }
    stop_with(s, Signal::SIGTERM, &pids);
}

#[test]
fn serve_reports_unhealthy_pools_with_the_reason_and_stops_on_sigint() {
    let s = serve(&pool_config("no_such_module.Adapter", 1));
    let (code, body) = http(s.admin, "GET", "/health", None);
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reason"], "pool 'default' has 0 of 1 workers ready");
    stop_with(s, Signal::SIGINT, &[]);
}

#[test]
fn execute_needs_the_admin_token_and_status_of_a_dead_address_fails_clearly() {
    let s = serve(&pool_config(
        "snakepit_bridge.adapters.showcase.ShowcaseAdapter",
        1,
    ));
    let mut stream = TcpStream::connect(s.admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = r#"{"tool":"add"}"#;
    write!(
        stream,
        "POST /execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    stop_with(s, Signal::SIGTERM, &[]);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let out = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(["status", "--admin", &dead.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `snakepit serve --admin"));
}

#[test]
fn exec_with_log_level_debug_prints_debug_lines_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = write_config(
        dir.path(),
        &pool_config("snakepit_bridge.adapters.showcase.ShowcaseAdapter", 1),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(["exec", "ping", "--config"])
        .arg(&quiet)
        .env_remove("SNAKEPIT_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("DEBUG"));

    let loud = dir.path().join("debug.toml");
    let body = format!(
        "log_level = \"debug\"\n{}",
        pool_config("snakepit_bridge.adapters.showcase.ShowcaseAdapter", 1)
    );
    std::fs::write(&loud, body).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(["exec", "ping", "--config"])
        .arg(&loud)
        .env_remove("SNAKEPIT_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("DEBUG") && l.contains("worker ready")),
        "stderr: {stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message"], "pong");
}

#[test]
fn python_log_lines_reach_the_host_log_naming_their_worker_in_both_start_modes() {
    for mode in ["spawn", "zygote"] {
        let dir = tempfile::tempdir().unwrap();
        // A forked worker writes to its zygote's stderr, so the line itself names the worker.
        let body = format!(
            "log_level = \"info\"\n{}start_mode = \"{mode}\"\nadapter_env = {{ SNAKEPIT_LOG_LEVEL = \"info\" }}\n",
            pool_config("snakepit_bridge.adapters.showcase.ShowcaseAdapter", 1)
        );
        let config = write_config(dir.path(), &body);
        let out = Command::new(env!("CARGO_BIN_EXE_snakepit"))
            .args(["exec", "ping", "--config"])
            .arg(&config)
            .env_remove("SNAKEPIT_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}: {stderr}");
        assert!(
            stderr.lines().any(|l| l.contains("snakepit::python")
                && l.contains("INFO worker=default_worker_1 snakepit_bridge.server:")),
            "{mode}: no Python log line naming its worker in the host log: {stderr}"
        );
    }
}
