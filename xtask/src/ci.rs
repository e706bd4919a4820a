//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use anyhow::Result;

use crate::util::{cargo, project_root, sh};

pub(crate) fn run() -> Result<()> {
    sh(cargo().args(["fmt", "--all", "--", "--check"]))?;
    sh(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    crate::deps::check()?;
    let python = crate::bootstrap::run(false)?;
    crate::codegen::run(true)?;
    // The bridge's type check (mypy and the stubs come with python/'s `dev` extra, which
    // bootstrap installs; the flags live in python/pyproject.toml).
    sh(std::process::Command::new(&python)
        .args(["-m", "mypy", "--config-file", "pyproject.toml"])
        .current_dir(project_root().join("python")))?;
    sh(cargo()
        .args(["test", "--workspace", "--all-targets"])
        .env("SNAKEPIT_PYTHON", &python))?;
    sh(cargo().args(["test", "--workspace", "--doc"]))?;
    crate::examples::run()?;
    sh(std::process::Command::new(&python)
        .args(["-m", "pytest", "-q", "python/tests"])
        .current_dir(project_root()))?;
    eprintln!("ci: all checks passed");
    Ok(())
}
