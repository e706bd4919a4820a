//! The `snakepit` binary: wires the command line to the library crates.

mod admin;
mod doctor;
mod exec;
mod exec_args;
mod gen;
mod gen_names;
mod hardware;
mod python;
mod serve;
mod setup;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code of a tool that raised or rejected its input.
const EXIT_TOOL_ERROR: u8 = 1;
/// Exit code of a usage error (bad arguments, bad JSON, bad config).
const EXIT_USAGE: u8 = 2;
/// Exit code of an infrastructure failure (Python missing, worker crash, timeout...).
const EXIT_INFRA: u8 = 3;

/// Run Python tools through a pool of supervised worker processes.
#[derive(Parser)]
#[command(name = "snakepit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a pool, run one tool call, print its result, shut down.
    Exec(exec::ExecArgs),
    /// Check Python, the bridge package and each pool's adapter.
    Doctor(doctor::DoctorArgs),
    /// Generate code, e.g. `snakepit gen adapter NAME`.
    #[command(subcommand)]
    Gen(gen::GenCommand),
    /// Detect CPU features and accelerators (CUDA, ROCm, MPS).
    Hardware(hardware::HardwareArgs),
    /// Build the Python environment the pools use (snakepit_bridge and python_packages).
    Setup(setup::SetupArgs),
    /// Run the configured pools until SIGTERM or SIGINT, with a loopback admin endpoint.
    Serve(serve::ServeArgs),
    /// Print a running host's status (`--admin ADDR` of `snakepit serve`) as a table.
    Status(status::StatusArgs),
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A stop by a signal: `code` is 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
    pub(crate) fn signalled(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn infra(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_INFRA,
            message: message.into(),
        }
    }

    /// Classifies a library error: the tool's fault, the caller's config, or the infrastructure.
    pub(crate) fn from_core(err: &snakepit_core::Error) -> Self {
        use snakepit_core::ErrorKind;
        let code = match err.kind() {
            ErrorKind::PythonException | ErrorKind::Validation => EXIT_TOOL_ERROR,
            ErrorKind::Config => EXIT_USAGE,
            _ => EXIT_INFRA,
        };
        let mut message = err.to_string();
        if let Some(py) = err.python_exception() {
            if !py.traceback.is_empty() {
                message.push('\n');
                message.push_str(py.traceback.trim_end());
            }
        }
        Self { code, message }
    }
}

/// Installs the host log from the configuration's `log_level` and `log_categories`.
///
/// Commands that read a configuration call this once they have it; the others log at the
/// seeds' default level (error).
pub(crate) fn init_logging(config: &snakepit_core::config::SnakepitConfig) -> Result<(), CliError> {
    let settings = snakepit_telemetry::LogSettings::from_config(
        config.log_level.as_deref(),
        config.log_categories.as_ref(),
    )
    .map_err(|e| CliError::usage(e.to_string()))?;
    snakepit_telemetry::init_logging(&settings);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Exec(_) | Command::Serve(_)) {
        snakepit_telemetry::init_tracing(snakepit_telemetry::LogLevel::default());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("snakepit: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INFRA);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Exec(args) => exec::run(args).await,
            Command::Setup(args) => setup::run(args).await,
            Command::Hardware(args) => hardware::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Gen(cmd) => gen::run(cmd),
            Command::Serve(args) => serve::run(args).await,
            Command::Status(args) => status::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snakepit: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
