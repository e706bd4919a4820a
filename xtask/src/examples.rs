//! `cargo xtask examples`: builds every crate's `examples/*.rs` and runs each end to end.
//!
//! The seeds' runner knobs apply: `SNAKEPIT_EXAMPLE_DURATION_MS` (how long looping examples
//! run, default 1 000 here) and `SNAKEPIT_RUN_TIMEOUT_MS` (the bound on each example, default
//! 120 000); an example that overruns it is killed and counted as failed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{cargo, project_root, sh};

const DEFAULT_DURATION_MS: &str = "1000";
const DEFAULT_RUN_TIMEOUT_MS: u64 = 120_000;

/// One runnable example: its crate and its name.
#[derive(Debug)]
struct Example {
    krate: String,
    name: String,
}

pub(crate) fn run() -> Result<()> {
    let python = crate::bootstrap::run(false)?;
    let examples = discover(&project_root())?;
    if examples.is_empty() {
        bail!("no examples found under */examples/*.rs");
    }
    sh(cargo().args(["build", "--workspace", "--examples", "--quiet"]))?;
    let timeout = Duration::from_millis(
        std::env::var("SNAKEPIT_RUN_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_RUN_TIMEOUT_MS),
    );
    let duration = std::env::var("SNAKEPIT_EXAMPLE_DURATION_MS")
        .unwrap_or_else(|_| DEFAULT_DURATION_MS.into());
    let bin_dir = target_dir().join("debug").join("examples");
    let started = Instant::now();
    let mut failed = Vec::new();
    for ex in &examples {
        eprintln!("== example {}/{}", ex.krate, ex.name);
        let t = Instant::now();
        let mut cmd = Command::new(bin_dir.join(&ex.name));
        cmd.current_dir(project_root())
            .env("SNAKEPIT_PYTHON", &python)
            .env("SNAKEPIT_EXAMPLE_DURATION_MS", &duration);
        match run_bounded(&mut cmd, timeout) {
            Ok(()) => eprintln!("== ok {} ({:.1} s)", ex.name, t.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("== FAILED {}: {e:#}", ex.name);
                failed.push(ex.name.clone());
            }
        }
    }
    eprintln!(
        "examples: {} run in {:.1} s, {} failed",
        examples.len(),
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("examples failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Every `<crate>/examples/<name>.rs` of the workspace, sorted (folders like `support/` are
/// modules shared by the examples, not examples).
fn discover(root: &Path) -> Result<Vec<Example>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).context("cannot list the workspace")? {
        let krate = entry?.path();
        let Ok(files) = std::fs::read_dir(krate.join("examples")) else {
            continue;
        };
        for file in files {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "rs") {
                found.push(Example {
                    krate: name_of(&krate),
                    name: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                });
            }
        }
    }
    found.sort_by(|a, b| (&a.krate, &a.name).cmp(&(&b.krate, &b.name)));
    Ok(found)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// Runs `cmd` (output inherited), killing it when it runs past `timeout`.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<()> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("exited with {status}");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "still running after {} ms (SNAKEPIT_RUN_TIMEOUT_MS); killed",
                timeout.as_millis()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
