//! `cargo xtask bootstrap`: the Python environment, through `snakepit setup` so there is one implementation.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::util::{cargo, project_root, sh};

/// Ensures `.venv` exists with `snakepit_bridge` installed and returns its interpreter.
pub(crate) fn run(force: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    let root = project_root();
    cmd.args(["run", "--quiet", "--package", "snakepit-cli", "--", "setup"])
        .arg("--venv")
        .arg(root.join(".venv"))
        .arg("--bridge-source")
        .arg(root.join("python"));
    if force {
        cmd.arg("--force");
    }
    sh(&mut cmd)?;
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        bail!(
            "`snakepit setup` finished but {} does not exist",
            python.display()
        );
    }
    Ok(python)
}
