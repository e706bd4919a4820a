//! `snakepit setup`: the Python environment, created once and verified.

use clap::Args;
use snakepit_worker::python_env::{default_venv_dir, setup_venv, SetupMode};

use crate::CliError;

/// Options of `snakepit setup`.
#[derive(Args)]
pub(crate) struct SetupArgs {
    /// Reinstall even when the environment looks up to date.
    #[arg(long)]
    force: bool,
}

pub(crate) async fn run(args: SetupArgs) -> Result<(), CliError> {
    let venv =
        default_venv_dir().ok_or_else(|| CliError::usage("cannot locate the workspace root"))?;
    let mode = if args.force {
        SetupMode::Force
    } else {
        SetupMode::IfNeeded
    };
    let python = setup_venv(&venv, mode)
        .await
        .map_err(|e| CliError::from_core(&e))?;
    println!("{}", python.display());
    Ok(())
}
