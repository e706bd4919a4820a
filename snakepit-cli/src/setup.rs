//! `snakepit setup`: the Python environment for the configured pools, built once and verified.

use std::path::PathBuf;

use clap::Args;
use snakepit_core::config::{PythonRuntime, SnakepitConfig};
use snakepit_worker::python_env::{self, BridgeSource, PythonSource, SetupMode, SetupPlan};

use crate::CliError;

/// Options of `snakepit setup`.
#[derive(Args)]
pub(crate) struct SetupArgs {
    /// Configuration file (its python_runtime and python_packages; default: the embedded one).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rebuild even when the environment is complete.
    #[arg(long)]
    force: bool,
    /// Build this virtual environment instead of the one resolution picks.
    #[arg(long)]
    venv: Option<PathBuf>,
    /// Install the bridge editable from this source checkout's `python/` folder (with its dev
    /// extras) instead of the copy carried inside the binary.
    #[arg(long)]
    bridge_source: Option<PathBuf>,
}

pub(crate) async fn run(args: SetupArgs) -> Result<(), CliError> {
    let config = match &args.config {
        Some(path) => SnakepitConfig::from_file(path),
        None => Ok(SnakepitConfig::embedded_default()),
    }
    .map_err(|e| CliError::usage(e.to_string()))?;
    let pool = config
        .pool_configs()
        .map_err(|e| CliError::usage(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::usage("the configuration has no pool"))?;
    let settings = pool.python_env.clone();
    let dir = match &args.venv {
        Some(dir) => std::path::absolute(dir)
            .map_err(|e| CliError::usage(format!("bad --venv {}: {e}", dir.display())))?,
        None => {
            let choice = crate::python::resolve(&pool);
            match &choice.source {
                PythonSource::Owned(dir) => dir.clone(),
                _ => {
                    // Not ours to change: check it, and say how to get one snakepit builds.
                    let python = python_env::ensure_choice(&choice, &settings)
                        .await
                        .map_err(|e| CliError::from_core(&e))?;
                    eprintln!(
                        "snakepit: using {} ({}); nothing to build{}",
                        python.display(),
                        choice.reason,
                        if settings.runtime == PythonRuntime::System {
                            ""
                        } else {
                            " (pass --venv DIR to build an environment there)"
                        }
                    );
                    println!("{}", python.display());
                    return Ok(());
                }
            }
        }
    };
    let mut plan = SetupPlan::new(dir, settings);
    if args.force {
        plan.mode = SetupMode::Force;
    }
    if let Some(src) = &args.bridge_source {
        let src = std::path::absolute(src)
            .map_err(|e| CliError::usage(format!("bad --bridge-source {}: {e}", src.display())))?;
        if !src.join("pyproject.toml").is_file() {
            return Err(CliError::usage(format!(
                "--bridge-source {} has no pyproject.toml; point it at the checkout's python/ folder",
                src.display()
            )));
        }
        plan.bridge = BridgeSource::Editable(src);
    }
    let python = python_env::setup_env(&plan)
        .await
        .map_err(|e| CliError::from_core(&e))?;
    println!("{}", python.display());
    Ok(())
}
