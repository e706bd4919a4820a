//! `cargo xtask ci`'s dependency checks: every library crate builds alone with no default
//! features, and the dependency trees of `snakepit-pool` stay within their recorded sizes.

use anyhow::{bail, Context, Result};

use crate::util::{cargo, sh};

/// The library crates, each of which must build with `--no-default-features`.
const CRATES: &[&str] = &[
    "snakepit-core",
    "snakepit-proto",
    "snakepit-worker",
    "snakepit-resilience",
    "snakepit-telemetry",
    "snakepit-hardware",
    "snakepit-pool",
    "snakepit-cli",
];

/// Unique normal dependencies of `snakepit-pool` (itself included), as recorded when the
/// features were split (it was 121 before). Raise a figure only on purpose, saying why in
/// the commit: these numbers stop dependencies from growing silently. Raised by 2 for zero
/// copy (`bytemuck` for typed array views in `snakepit-core`, `memmap2` for the worker's
/// shared-memory arena).
const POOL_BUDGETS: &[(&str, &[&str], usize)] = &[
    ("no default features", &["--no-default-features"], 99),
    ("default features", &[], 105),
];

pub(crate) fn check() -> Result<()> {
    for krate in CRATES {
        sh(cargo().args([
            "check",
            "-p",
            krate,
            "--no-default-features",
            "--all-targets",
        ]))?;
    }
    for (what, flags, budget) in POOL_BUDGETS {
        let count = unique_deps("snakepit-pool", flags)?;
        eprintln!("deps: snakepit-pool with {what}: {count} crates (budget {budget})");
        if count > *budget {
            bail!(
                "snakepit-pool with {what} now pulls {count} crates, over its budget of {budget}; \
                 drop the new dependency or feature-gate it, or raise the budget in xtask/src/deps.rs \
                 and say why"
            );
        }
    }
    Ok(())
}

/// Counts the unique crates in `cargo tree -e normal` of `krate` (itself included).
fn unique_deps(krate: &str, flags: &[&str]) -> Result<usize> {
    let out = cargo()
        .args(["tree", "-p", krate, "-e", "normal", "--prefix", "none"])
        .args(flags)
        .output()
        .context("running cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("cargo tree printed non-UTF-8")?;
    let unique: std::collections::BTreeSet<&str> = text
        .lines()
        .map(|l| l.trim_end_matches(" (*)").trim())
        .filter(|l| !l.is_empty())
        .collect();
    Ok(unique.len())
}
