//! `cargo xtask bench [--quick] [--only NAME]`: the end-to-end suite (the `e2e` bench of
//! `snakepit-pool`, built with the optimised `bench` profile), then the criterion micro-benches
//! of the scheduler and the resilience stack (skipped with `--only`). Results land in
//! `target/bench/results.json`.

use anyhow::{bail, Result};

use crate::util::{cargo, project_root, sh};

// The end-to-end groups `--only` accepts, shared with the suite.
include!("../../snakepit-pool/benches/support/groups.rs");

/// The criterion micro-benches run after the end-to-end suite: (package, bench target).
const MICRO_BENCHES: &[(&str, &str)] = &[
    ("snakepit-pool", "scheduler"),
    ("snakepit-resilience", "stack"),
];

/// Runs the suite; `quick` trims rounds and sizes, `only` picks one end-to-end group.
pub(crate) fn run(quick: bool, only: Option<&str>) -> Result<()> {
    if let Some(only) = only {
        if !GROUPS.contains(&only) {
            bail!(
                "unknown bench group '{only}' (groups: {})",
                GROUPS.join(", ")
            );
        }
    }
    let python = crate::bootstrap::run(false)?;
    let out = project_root().join("target/bench/results.json");
    let mut cmd = cargo();
    cmd.args([
        "bench",
        "--package",
        "snakepit-pool",
        "--bench",
        "e2e",
        "--",
        "--suite",
        "--out",
    ])
    .arg(&out)
    .env("SNAKEPIT_PYTHON", &python);
    if quick {
        cmd.arg("--quick");
    }
    if let Some(only) = only {
        cmd.args(["--only", only]);
    }
    sh(&mut cmd)?;
    if only.is_none() {
        for (package, bench) in MICRO_BENCHES {
            let mut micro = cargo();
            micro.args(["bench", "--package", package, "--bench", bench, "--"]);
            if quick {
                micro.args(["--warm-up-time", "1", "--measurement-time", "2"]);
            }
            sh(&mut micro)?;
        }
    }
    Ok(())
}
