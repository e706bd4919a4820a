//! Finding the Python interpreter, and provisioning snakepit's own environment when it is missing.
//!
//! Resolution order (design.md, and the seeds' "explicit overrides, then the python_packages
//! venv, then managed/system"):
//! 1. `SNAKEPIT_PYTHON`;
//! 2. the pool's `python_executable`;
//! 3. `python_runtime = "system"`: `python3` from `PATH`, as it is;
//! 4. `python_packages.env_dir`, when configured (created on first use);
//! 5. snakepit's own environment under `SNAKEPIT_HOME` (default `~/.local/share/snakepit`),
//!    built on first use from the bridge package carried inside the binary: with
//!    `python3 -m venv` and pip (`venv`, the default) or with uv (`managed`).
//!
//! A library never searches the file system for an interpreter: nothing here looks at the
//! current directory. An application may put its own step between 4 and 5 with
//! [`resolve_explicit`] and [`default_choice`]: the `snakepit` CLI looks for the project's
//! `.venv` there and hands it to the pool as `python_executable`.
//!
//! Environments snakepit builds are assembled in a temporary folder and renamed into place
//! when complete, so an interrupted or failed setup never leaves a half-built one behind.

mod bundle;
mod packages;
mod provision;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use snakepit_core::config::{PythonEnvConfig, PythonRuntime};
use snakepit_core::Error;

pub use bundle::{bridge_hash, bridge_version};
pub use packages::missing_packages;
pub use provision::{setup_env, BridgeSource, SetupMode, SetupPlan};

/// Environment variable naming the interpreter; it wins over every other source.
pub const PYTHON_ENV_VAR: &str = "SNAKEPIT_PYTHON";
/// Environment variable naming snakepit's data folder (its own Python environments live there).
pub const HOME_ENV_VAR: &str = "SNAKEPIT_HOME";

/// Where the chosen interpreter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonSource {
    /// `SNAKEPIT_PYTHON`.
    EnvVar,
    /// The pool's `python_executable`.
    Configured,
    /// `python3` from `PATH` (`python_runtime = "system"`).
    System,
    /// A project `.venv` that has snakepit_bridge installed, found by the application (the
    /// `snakepit` CLI looks for one; this crate never searches directories).
    ProjectVenv(PathBuf),
    /// An environment snakepit builds and fills: `python_packages.env_dir` or its own.
    Owned(PathBuf),
}

/// The interpreter [`resolve`] picked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonChoice {
    /// The interpreter to run (may not exist yet for [`PythonSource::Owned`]).
    pub python: PathBuf,
    /// Where it came from.
    pub source: PythonSource,
    /// One line saying why it was picked (shown by `snakepit doctor`).
    pub reason: String,
    /// Candidates passed over on the way, each with the reason.
    pub skipped: Vec<String>,
}

/// What resolution looks at besides the configuration (the process environment, by default).
#[derive(Debug, Clone, Default)]
pub struct ResolveContext {
    /// The value of `SNAKEPIT_PYTHON`.
    pub python_env_var: Option<PathBuf>,
    /// snakepit's data folder.
    pub home: Option<PathBuf>,
}

impl ResolveContext {
    /// Reads `SNAKEPIT_PYTHON` and the data folder from the process environment.
    pub fn from_process() -> Self {
        Self {
            python_env_var: std::env::var_os(PYTHON_ENV_VAR)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            home: snakepit_home(),
        }
    }
}

/// snakepit's data folder: `SNAKEPIT_HOME`, else `$XDG_DATA_HOME/snakepit`, else `~/.local/share/snakepit`.
pub fn snakepit_home() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var(HOME_ENV_VAR)
        .or_else(|| var("XDG_DATA_HOME").map(|d| d.join("snakepit")))
        .or_else(|| var("HOME").map(|h| h.join(".local/share/snakepit")))
}

/// The folder of snakepit's own environment for `settings` under `home`.
///
/// Its name carries the runtime, the requested version and the bundled bridge's version and
/// hash, so a binary with a different bridge builds (and uses) its own.
pub fn own_env_dir(home: &Path, settings: &PythonEnvConfig) -> PathBuf {
    let version = settings
        .version
        .as_deref()
        .map(|v| format!("py{v}-"))
        .unwrap_or_default();
    home.join("python").join(format!(
        "{}-{version}{}-{}",
        settings.runtime.as_str(),
        bridge_version(),
        bridge_hash()
    ))
}

/// The interpreter inside a virtual environment.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Picks the interpreter for `configured` (`python_executable`) and `settings`, creating nothing:
/// [`resolve_explicit`], else [`default_choice`].
pub fn resolve(
    configured: Option<&Path>,
    settings: &PythonEnvConfig,
    ctx: &ResolveContext,
) -> PythonChoice {
    resolve_explicit(configured, settings, ctx).unwrap_or_else(|| default_choice(settings, ctx))
}

fn pick(python: PathBuf, source: PythonSource, reason: &str, skipped: Vec<String>) -> PythonChoice {
    PythonChoice {
        python,
        source,
        reason: reason.to_owned(),
        skipped,
    }
}

/// The interpreter the configuration or the environment names (steps 1-4 of the order), if any.
pub fn resolve_explicit(
    configured: Option<&Path>,
    settings: &PythonEnvConfig,
    ctx: &ResolveContext,
) -> Option<PythonChoice> {
    if let Some(p) = &ctx.python_env_var {
        return Some(pick(
            p.clone(),
            PythonSource::EnvVar,
            "SNAKEPIT_PYTHON is set",
            vec![],
        ));
    }
    if let Some(p) = configured {
        let reason = "python_executable is configured";
        return Some(pick(
            p.to_path_buf(),
            PythonSource::Configured,
            reason,
            vec![],
        ));
    }
    if settings.runtime == PythonRuntime::System {
        let reason = "python_runtime = \"system\": python3 from PATH, used as it is";
        return Some(pick("python3".into(), PythonSource::System, reason, vec![]));
    }
    let dir = settings.env_dir.as_ref()?;
    let reason = "python_packages.env_dir is configured (snakepit builds and fills it)";
    Some(pick(
        venv_python(dir),
        PythonSource::Owned(dir.clone()),
        reason,
        vec![],
    ))
}

/// The interpreter used when nothing names one (step 5): snakepit's own environment, or
/// `python3` from `PATH` when there is no data folder.
pub fn default_choice(settings: &PythonEnvConfig, ctx: &ResolveContext) -> PythonChoice {
    match &ctx.home {
        Some(home) => {
            let dir = own_env_dir(home, settings);
            let reason = format!(
                "snakepit's own environment (python_runtime = \"{}\"; built on first use or by `snakepit setup`)",
                settings.runtime.as_str()
            );
            pick(venv_python(&dir), PythonSource::Owned(dir), &reason, vec![])
        }
        None => {
            let skipped =
                vec!["snakepit's own environment: neither SNAKEPIT_HOME nor HOME is set".into()];
            let reason = "no environment found: python3 from PATH";
            pick("python3".into(), PythonSource::System, reason, skipped)
        }
    }
}

/// Returns an interpreter that can run workers, with the default environment settings.
pub async fn ensure_python(configured: Option<&Path>) -> Result<PathBuf, Error> {
    ensure_python_for(configured, &PythonEnvConfig::default()).await
}

/// Returns an interpreter that can run workers for `settings`, provisioning it when snakepit owns it.
///
/// An environment snakepit owns is built on first use (progress on stderr) and given the
/// missing `python_packages`; any other interpreter is only checked, and a missing package
/// is an error naming it and the command that installs it.
pub async fn ensure_python_for(
    configured: Option<&Path>,
    settings: &PythonEnvConfig,
) -> Result<PathBuf, Error> {
    let choice = resolve(configured, settings, &ResolveContext::from_process());
    ensure_choice(&choice, settings).await
}

/// Makes `choice` ready to run workers for `settings`: builds it when snakepit owns it, else
/// checks that it has the `python_packages`.
pub async fn ensure_choice(
    choice: &PythonChoice,
    settings: &PythonEnvConfig,
) -> Result<PathBuf, Error> {
    match &choice.source {
        PythonSource::Owned(dir) => {
            let plan = SetupPlan::new(dir.clone(), settings.clone());
            setup_env(&plan).await
        }
        _ => {
            packages::require_packages(choice, &settings.packages, settings.install_timeout)
                .await?;
            Ok(choice.python.clone())
        }
    }
}
