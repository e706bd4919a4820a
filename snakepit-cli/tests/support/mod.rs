//! Support for the CLI process tests: a `snakepit exec` host, and what /proc says about processes.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Writes a config with one pool of the fault-test adapter (python/tests/fault_adapter.py).
pub fn fault_config(dir: &Path, pool_size: usize, grace_ms: u64) -> PathBuf {
    let path = dir.join("snakepit.toml");
    let tests = repo_root().join("python").join("tests");
    std::fs::write(
        &path,
        format!(
            r#"
[[pools]]
name = "default"
pool_size = {pool_size}
adapter_spec = "fault_adapter.FaultAdapter"
graceful_shutdown_timeout_ms = {grace_ms}
pool_startup_timeout = 60000
adapter_env = {{ PYTHONPATH = "{}" }}
heartbeat = {{ enabled = false }}
# These tests find workers as the host's direct children (the host pipe of spawned workers);
# forked workers are the zygote's children and watch the host through a pidfd instead.
start_mode = "spawn"
"#,
            tests.display()
        ),
    )
    .unwrap();
    path
}

/// A running `snakepit exec` with its stdout lines readable.
pub struct Host {
    pub child: Child,
    pub lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Host {
    /// Starts `snakepit exec <args...>`.
    pub fn exec(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_snakepit"))
            .arg("exec")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start snakepit");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the host process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits (bounded) for the host's exit; returns its code or signal description.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (state, ppid, pgid) of a live process, from /proc/<pid>/stat.
pub fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
    ))
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _, _)| state != 'Z')
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// Live processes whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| stat(*p).is_some_and(|(s, pp, _)| pp == parent && s != 'Z'))
        .collect()
}

/// Live processes in the process groups `groups`.
pub fn members_of_groups(groups: &[u32]) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| stat(*p).is_some_and(|(s, _, g)| groups.contains(&g) && s != 'Z'))
        .collect()
}

/// The command line of a process, arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// Waits (polling every 20 ms, bounded) until the host has `n` worker children; returns them.
pub fn await_workers(host: &Host, n: usize, limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let workers: Vec<u32> = children_of(host.pid())
            .into_iter()
            .filter(|p| cmdline(*p).contains("snakepit_bridge.server"))
            .collect();
        if workers.len() >= n || Instant::now() > deadline {
            return workers;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The run id on a worker's command line (`--snakepit-run-id X`).
pub fn run_id_of(worker: u32) -> String {
    let line = cmdline(worker);
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--snakepit-run-id" {
            return words.next().unwrap().to_owned();
        }
    }
    panic!("no run id on the command line of {worker}: {line}")
}

/// The private run directories of run `run_id` under the temp dir.
pub fn run_dirs(run_id: &str) -> Vec<PathBuf> {
    let prefix = format!("snakepit-{run_id}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Polls `cond` every millisecond up to `limit`; returns the time it took to hold, if it did.
pub fn time_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if cond() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond().then(|| started.elapsed())
}
