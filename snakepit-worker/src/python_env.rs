//! Finding the Python interpreter, and creating the project's `.venv` when it is missing.
//!
//! Resolution order (design.md): `SNAKEPIT_PYTHON`, then the configured `python_executable`,
//! then a `.venv` in the current directory or one of its parents, then the workspace's
//! `.venv` (created on first use from the bundled `python/` package), then `python3`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use snakepit_core::Error;
use tokio::process::Command;

/// Environment variable naming the interpreter; it wins over every other source.
pub const PYTHON_ENV_VAR: &str = "SNAKEPIT_PYTHON";

/// The workspace this crate was built in; its `python/` folder holds the bridge package.
fn build_workspace_root() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Where `snakepit setup` creates the environment: `<workspace>/.venv`.
pub fn default_venv_dir() -> Option<PathBuf> {
    build_workspace_root().map(|r| r.join(".venv"))
}

/// The bundled `python/` package folder, when this binary was built from a checkout that has it.
pub fn bridge_package_dir() -> Option<PathBuf> {
    build_workspace_root()
        .map(|r| r.join("python"))
        .filter(|p| p.join("pyproject.toml").is_file())
}

/// Returns the interpreter to use without creating anything.
pub fn find_python(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = std::env::var_os(PYTHON_ENV_VAR).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let candidate = venv_python(&dir.join(".venv"));
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    if let Some(venv) = default_venv_dir() {
        let candidate = venv_python(&venv);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("python3")
}

/// Returns an interpreter that can import `snakepit_bridge`, creating the workspace `.venv` if needed.
///
/// An explicit choice (`SNAKEPIT_PYTHON` or `configured`) is used as it is. Otherwise, when no
/// environment exists yet, the `.venv` is created and the bundled package installed into it
/// (progress goes to stderr), so a fresh clone works without a separate setup step.
pub async fn ensure_python(configured: Option<&Path>) -> Result<PathBuf, Error> {
    let explicit =
        std::env::var_os(PYTHON_ENV_VAR).is_some_and(|p| !p.is_empty()) || configured.is_some();
    let found = find_python(configured);
    if explicit || found != Path::new("python3") {
        return Ok(found);
    }
    match default_venv_dir() {
        Some(venv) if bridge_package_dir().is_some() => {
            setup_venv(&venv, SetupMode::IfNeeded).await
        }
        _ => Ok(found),
    }
}

/// Whether [`setup_venv`] reinstalls an environment that looks up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupMode {
    /// Skip the work when the stamp matches and the imports succeed.
    IfNeeded,
    /// Reinstall regardless.
    Force,
}

/// Creates `venv` with the machine's `python3` and installs the bundled package with its dependencies.
///
/// Idempotent and quick when already done: a stamp records the hash of `pyproject.toml`, and
/// the imports are verified. Concurrent callers (parallel test binaries) serialise on a lock file.
pub async fn setup_venv(venv: &Path, mode: SetupMode) -> Result<PathBuf, Error> {
    let package = bridge_package_dir().ok_or_else(|| {
        Error::pool("the snakepit_bridge sources (python/) are not next to this build; install the package with `pip install snakepit-bridge` and set SNAKEPIT_PYTHON")
    })?;
    let python = venv_python(venv);
    let stamp_path = venv.join(".snakepit-stamp");
    let pyproject = std::fs::read(package.join("pyproject.toml")).map_err(|e| {
        Error::pool(format!(
            "cannot read {}: {e}",
            package.join("pyproject.toml").display()
        ))
    })?;
    let stamp = format!("{:016x}\n", fnv1a(&pyproject));

    let lock_path = venv.with_extension("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::pool(format!("cannot open lock {}: {e}", lock_path.display())))?;
    let _lock = tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::pool(format!("cannot lock the venv: {e}")))
    })
    .await
    .map_err(|e| Error::pool(format!("venv lock task failed: {e}")))??;

    let up_to_date = mode == SetupMode::IfNeeded
        && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str())
        && imports_ok(&python).await;
    if up_to_date {
        return Ok(python);
    }
    if !python.is_file() {
        eprintln!(
            "snakepit: creating Python environment {} ...",
            venv.display()
        );
        run_step(
            Command::new("python3").arg("-m").arg("venv").arg(venv),
            "create the venv",
        )
        .await?;
    }
    eprintln!("snakepit: installing snakepit_bridge and its dependencies (one time) ...");
    run_step(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
            ])
            .arg(format!("{}[dev]", package.display())),
        "install snakepit_bridge",
    )
    .await?;
    if !imports_ok(&python).await {
        return Err(Error::pool(format!(
            "{} cannot import snakepit_bridge and grpc after installation; run `snakepit setup --force`",
            python.display()
        )));
    }
    std::fs::write(&stamp_path, stamp)
        .map_err(|e| Error::pool(format!("cannot write {}: {e}", stamp_path.display())))?;
    eprintln!("snakepit: Python environment ready ({})", python.display());
    Ok(python)
}

async fn imports_ok(python: &Path) -> bool {
    let probe = Command::new(python)
        .args(["-c", "import snakepit_bridge, grpc, google.protobuf"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(tokio::time::timeout(Duration::from_secs(60), probe).await, Ok(Ok(s)) if s.success())
}

async fn run_step(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            Error::pool(format!(
                "cannot {what}: {e} (is python3 installed and on PATH?)"
            ))
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::pool(format!(
            "could not {what} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A stable 64-bit FNV-1a hash (std's hasher is not stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
