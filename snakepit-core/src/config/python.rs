//! `python_runtime` and `python_packages`: which interpreter runs the workers and what it must have.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// How the interpreter is found when neither `SNAKEPIT_PYTHON` nor `python_executable` names one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PythonRuntime {
    /// `python3` from `PATH`, used as it is (snakepit installs nothing into it).
    System,
    /// A virtual environment: `python_packages.env_dir`, else (in the `snakepit` CLI) a project
    /// `.venv` that has the bridge installed, else snakepit's own environment, created with
    /// `python3 -m venv` on first use.
    #[default]
    Venv,
    /// Like `venv`, but created and filled by `uv` (which can also fetch the requested `version`).
    Managed,
}

impl PythonRuntime {
    /// Returns the configuration spelling (`system`, `venv`, `managed`).
    pub fn as_str(self) -> &'static str {
        match self {
            PythonRuntime::System => "system",
            PythonRuntime::Venv => "venv",
            PythonRuntime::Managed => "managed",
        }
    }
}

/// The `python_runtime` key: a strategy, or the seeds' table `{ strategy, version, managed }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PythonRuntimeTable {
    /// `python_runtime = "venv"`.
    Strategy(PythonRuntime),
    /// `python_runtime = { strategy = "managed", version = "3.12" }`.
    Table {
        /// The strategy.
        strategy: PythonRuntime,
        /// The Python version a managed runtime asks uv for.
        version: Option<String>,
        /// The seeds' flag; `true` means the same as `strategy = "managed"`.
        managed: Option<bool>,
    },
}

/// Which tool installs packages into snakepit's own environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PythonInstaller {
    /// `python -m pip`.
    Pip,
    /// `uv pip`.
    Uv,
}

/// The `python_packages` key: requirements, or the seeds' table with installer, timeout and env_dir.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PythonPackagesTable {
    /// `python_packages = ["numpy>=1.26"]`.
    List(Vec<String>),
    /// `python_packages = { requirements = [...], installer = "uv", timeout_ms = 600000, env_dir = "..." }`.
    #[serde(rename_all = "snake_case")]
    Table {
        /// Requirements (pip syntax) every worker's interpreter must satisfy.
        #[serde(default)]
        requirements: Vec<String>,
        /// The installer (default: uv for the managed runtime, pip otherwise).
        installer: Option<PythonInstaller>,
        /// How long one environment or install step may take (ms, default 600 000).
        timeout_ms: Option<u64>,
        /// The virtual environment to use and create (default: snakepit's own).
        env_dir: Option<PathBuf>,
    },
}

/// The normalized Python environment settings of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonEnvConfig {
    /// The runtime strategy.
    pub runtime: PythonRuntime,
    /// The Python version a managed runtime asks for.
    pub version: Option<String>,
    /// Requirements the interpreter must satisfy (installed into snakepit's own environments,
    /// checked elsewhere).
    pub packages: Vec<String>,
    /// The installer (`None`: uv for managed, pip otherwise).
    pub installer: Option<PythonInstaller>,
    /// The limit on one environment or install step.
    pub install_timeout: Duration,
    /// The virtual environment to use and create instead of snakepit's own.
    pub env_dir: Option<PathBuf>,
}

// The seeds leave install timeouts to the caller; ten minutes fits a first grpcio install.
const DEFAULT_INSTALL_TIMEOUT_MS: u64 = 600_000;

impl Default for PythonEnvConfig {
    fn default() -> Self {
        Self {
            runtime: PythonRuntime::default(),
            version: None,
            packages: Vec::new(),
            installer: None,
            install_timeout: Duration::from_millis(DEFAULT_INSTALL_TIMEOUT_MS),
            env_dir: None,
        }
    }
}

impl PythonEnvConfig {
    /// Builds the settings from the two keys, validating requirement names and the timeout.
    pub fn from_tables(
        runtime: Option<&PythonRuntimeTable>,
        packages: Option<&PythonPackagesTable>,
    ) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        match runtime {
            None => {}
            Some(PythonRuntimeTable::Strategy(s)) => out.runtime = *s,
            Some(PythonRuntimeTable::Table {
                strategy,
                version,
                managed,
            }) => {
                out.runtime = if *managed == Some(true) {
                    PythonRuntime::Managed
                } else {
                    *strategy
                };
                out.version = version.clone();
            }
        }
        match packages {
            None => {}
            Some(PythonPackagesTable::List(reqs)) => out.packages = reqs.clone(),
            Some(PythonPackagesTable::Table {
                requirements,
                installer,
                timeout_ms,
                env_dir,
            }) => {
                out.packages = requirements.clone();
                out.installer = *installer;
                out.env_dir = env_dir.clone();
                if let Some(ms) = *timeout_ms {
                    if ms == 0 || ms > 2_592_000_000 {
                        return Err(ConfigError::invalid(
                            "python_packages.timeout_ms",
                            ms,
                            "a number of milliseconds from 1 to 2592000000 (30 days)",
                        ));
                    }
                    out.install_timeout = Duration::from_millis(ms);
                }
            }
        }
        for req in &out.packages {
            if requirement_name(req).is_empty() {
                return Err(ConfigError::invalid(
                    "python_packages",
                    format!("{req:?}"),
                    "pip requirements such as \"numpy>=1.26\"",
                ));
            }
        }
        Ok(out)
    }
}

/// The distribution name of a pip requirement (`numpy` of `numpy[extra]>=1.26; python_version>"3"`).
pub fn requirement_name(requirement: &str) -> &str {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(requirement.len());
    &requirement[..end]
}
