//! `cargo xtask`: project automation (bootstrap, codegen, ci, examples, bench).

mod bench;
mod bootstrap;
mod ci;
mod codegen;
mod deps;
mod examples;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project automation for snakepit-rs.
#[derive(Parser)]
#[command(name = "xtask", about = "snakepit-rs project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create `.venv` and install the `snakepit_bridge` Python package (idempotent).
    Bootstrap {
        /// Reinstall even when the environment looks up to date.
        #[arg(long)]
        force: bool,
    },
    /// Regenerate the Rust and Python code of the bridge protocol.
    Codegen {
        /// Fail, naming the stale file, instead of writing.
        #[arg(long)]
        check: bool,
    },
    /// Run everything CI runs: fmt, clippy, codegen --check, mypy, cargo tests, pytest.
    Ci,
    /// Build every crate's examples and run each end to end (SNAKEPIT_RUN_TIMEOUT_MS bounds each).
    Examples,
    /// Run the benchmark suite (end-to-end figures against baselines, then criterion).
    Bench {
        /// Fewer rounds and sizes (about two minutes).
        #[arg(long)]
        quick: bool,
        /// One end-to-end group only: latency, throughput, startup, payload or recovery.
        #[arg(long)]
        only: Option<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Bootstrap { force } => bootstrap::run(force).map(|_| ()),
        Command::Codegen { check } => codegen::run(check),
        Command::Ci => ci::run(),
        Command::Examples => examples::run(),
        Command::Bench { quick, only } => bench::run(quick, only.as_deref()),
    }
}
