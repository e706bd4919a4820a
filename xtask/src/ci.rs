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
