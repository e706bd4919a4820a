//! Building an environment snakepit owns: in a temporary folder, renamed into place when complete.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use snakepit_core::config::{PythonEnvConfig, PythonInstaller, PythonRuntime};
use snakepit_core::Error;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::packages::{missing_packages, quoted};
use super::{bridge_hash, bridge_version, bundle, venv_python};

/// Whether [`setup_env`] rebuilds an environment that is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupMode {
    /// Keep a complete environment (only missing packages are installed).
    IfNeeded,
    /// Build it again from scratch.
    Force,
}

/// Which copy of snakepit_bridge goes into the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeSource {
    /// The package carried inside this binary (a regular install).
    Embedded,
    /// A source checkout's `python/` folder, installed editable with its `dev` extras.
    Editable(PathBuf),
}

/// What [`setup_env`] builds.
#[derive(Debug, Clone)]
pub struct SetupPlan {
    /// The environment's folder.
    pub dir: PathBuf,
    /// Runtime, version, packages, installer and timeout.
    pub settings: PythonEnvConfig,
    /// The bridge package to install.
    pub bridge: BridgeSource,
    /// Rebuild or keep.
    pub mode: SetupMode,
}

impl SetupPlan {
    /// Plans the environment `dir` for `settings`, with the embedded bridge, kept when complete.
    pub fn new(dir: PathBuf, settings: PythonEnvConfig) -> Self {
        Self {
            dir,
            settings,
            bridge: BridgeSource::Embedded,
            mode: SetupMode::IfNeeded,
        }
    }

    fn stamp(&self) -> String {
        match &self.bridge {
            BridgeSource::Embedded => {
                format!("snakepit-bridge {} {}\n", bridge_version(), bridge_hash())
            }
            BridgeSource::Editable(path) => {
                // The checkout's dependencies may change: a new pyproject.toml means reinstall.
                let pyproject = std::fs::read(path.join("pyproject.toml")).unwrap_or_default();
                let hash = pyproject.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                format!("snakepit-bridge editable {} {hash:016x}\n", path.display())
            }
        }
    }

    fn uses_uv(&self) -> bool {
        match self.settings.installer {
            Some(i) => i == PythonInstaller::Uv,
            None => self.settings.runtime == PythonRuntime::Managed,
        }
    }
}

/// The marker written last into a complete environment.
const STAMP_FILE: &str = ".snakepit-stamp";

fn progress(step: usize, total: usize, started: Instant, what: &str) {
    eprintln!(
        "snakepit: [{step}/{total}] {what} ({} s)",
        started.elapsed().as_secs()
    );
}

/// Builds (or checks) the environment of `plan` and returns its interpreter.
///
/// A complete environment (its stamp matches) is kept and only given missing `python_packages`.
/// Otherwise it is built in a sibling temporary folder, with progress on stderr and the
/// installer's output in the error when a step fails or exceeds `install_timeout`, and
/// renamed into place only when complete. Concurrent callers serialise on a lock file.
pub async fn setup_env(plan: &SetupPlan) -> Result<PathBuf, Error> {
    let dir = &plan.dir;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::pool(format!("{} is not a folder name", dir.display())))?;
    std::fs::create_dir_all(&parent)
        .map_err(|e| Error::pool_from(format!("cannot create {}: {e}", parent.display()), e))?;
    let _lock = lock(&parent.join(format!(".{name}.lock"))).await?;
    let python = venv_python(dir);
    let complete = std::fs::read_to_string(dir.join(STAMP_FILE))
        .ok()
        .as_deref()
        == Some(plan.stamp().as_str())
        && python.is_file();
    if !(complete && plan.mode == SetupMode::IfNeeded) {
        build(plan, &parent, &name).await?;
    }
    let missing = missing_packages(
        &python,
        &plan.settings.packages,
        plan.settings.install_timeout,
    )
    .await?;
    if !missing.is_empty() {
        let started = Instant::now();
        progress(
            1,
            1,
            started,
            &format!(
                "installing python_packages {} into {}",
                missing.join(", "),
                dir.display()
            ),
        );
        install(plan, &python, &missing, "install python_packages").await?;
        let still = missing_packages(
            &python,
            &plan.settings.packages,
            plan.settings.install_timeout,
        )
        .await?;
        if !still.is_empty() {
            return Err(Error::pool(format!(
                "after installing, {} still lacks {} (python_packages); check the requirement names",
                python.display(),
                still.join(", ")
            )));
        }
    }
    Ok(python)
}

async fn lock(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Error> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::pool_from(format!("cannot open lock {}: {e}", path.display()), e))?;
    tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::pool_from(format!("cannot lock the Python environment: {e}"), e)
        })
    })
    .await
    .map_err(|e| Error::pool_from(format!("environment lock task failed: {e}"), e))?
}

/// Removes a folder when dropped unless disarmed: a failed build leaves nothing behind.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

async fn build(plan: &SetupPlan, parent: &Path, name: &str) -> Result<(), Error> {
    let started = Instant::now();
    let total = 4;
    // Leftovers of builds that were interrupted (we hold the lock, so none is running).
    if let Ok(entries) = std::fs::read_dir(parent) {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!(".{name}.tmp-"))
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut guard = RemoveOnDrop(Some(tmp.clone()));
    let uv = plan.uses_uv();
    let creator = if uv { "uv venv" } else { "python -m venv" };
    progress(
        1,
        total,
        started,
        &format!(
            "creating a Python environment for {} ({creator})",
            plan.dir.display()
        ),
    );
    let mut create = if uv {
        let mut c = Command::new(uv_binary(plan)?);
        c.arg("venv").arg("--quiet");
        if let Some(v) = &plan.settings.version {
            c.arg("--python").arg(v);
        }
        c.arg(&tmp);
        c
    } else {
        let base = match &plan.settings.version {
            Some(v) => format!("python{v}"),
            None => "python3".to_owned(),
        };
        let mut c = Command::new(base);
        c.arg("-m").arg("venv").arg(&tmp);
        c
    };
    run_step(
        &mut create,
        "create the environment",
        plan.settings.install_timeout,
    )
    .await?;
    let python = venv_python(&tmp);

    let source = tempfile::tempdir()
        .map_err(|e| Error::pool_from(format!("cannot create a temporary folder: {e}"), e))?;
    let target = match &plan.bridge {
        BridgeSource::Embedded => {
            let n = bundle::write_bridge(source.path())?;
            progress(
                2,
                total,
                started,
                &format!(
                    "unpacked snakepit-bridge {} ({n} files) from this binary",
                    bridge_version()
                ),
            );
            vec![source.path().display().to_string()]
        }
        BridgeSource::Editable(path) => {
            progress(
                2,
                total,
                started,
                &format!("using the checkout's bridge package {}", path.display()),
            );
            vec!["-e".to_owned(), format!("{}[dev]", path.display())]
        }
    };
    progress(
        3,
        total,
        started,
        "installing snakepit-bridge and its dependencies (grpcio, protobuf) ...",
    );
    let mut reqs = target;
    reqs.extend(plan.settings.packages.iter().cloned());
    install(plan, &python, &reqs, "install snakepit-bridge").await?;
    let mut probe = Command::new(&python);
    probe.args(["-c", "import snakepit_bridge, grpc, google.protobuf"]);
    run_step(
        &mut probe,
        "import snakepit_bridge in the new environment",
        plan.settings.install_timeout,
    )
    .await?;
    std::fs::write(tmp.join(STAMP_FILE), plan.stamp())
        .map_err(|e| Error::pool_from(format!("cannot write the environment's stamp: {e}"), e))?;
    relocate_scripts(&tmp, &plan.dir);

    // Swap into place: the old environment (if any) moves aside first, then goes.
    let old = parent.join(format!(".{name}.tmp-old-{}", std::process::id()));
    if plan.dir.exists() {
        std::fs::rename(&plan.dir, &old).map_err(|e| {
            Error::pool_from(
                format!("cannot move the old {} aside: {e}", plan.dir.display()),
                e,
            )
        })?;
    }
    std::fs::rename(&tmp, &plan.dir).map_err(|e| {
        Error::pool_from(
            format!(
                "cannot move the new environment to {}: {e}",
                plan.dir.display()
            ),
            e,
        )
    })?;
    guard.0 = None;
    let _ = std::fs::remove_dir_all(&old);
    progress(
        4,
        total,
        started,
        &format!(
            "Python environment ready: {}",
            venv_python(&plan.dir).display()
        ),
    );
    Ok(())
}

fn uv_binary(plan: &SetupPlan) -> Result<PathBuf, Error> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("uv"))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| {
        let why = if plan.settings.runtime == PythonRuntime::Managed {
            "python_runtime = \"managed\""
        } else {
            "python_packages.installer = \"uv\""
        };
        Error::pool(format!(
            "{why} needs uv, which is not on PATH: install it (`pipx install uv`, or see https://docs.astral.sh/uv/), or use python_runtime = \"venv\" (python3 -m venv and pip)"
        ))
    })
}

/// Installs `requirements` (pip arguments) into the environment of `python`.
async fn install(
    plan: &SetupPlan,
    python: &Path,
    requirements: &[String],
    what: &str,
) -> Result<(), Error> {
    let mut cmd = if plan.uses_uv() {
        let mut c = Command::new(uv_binary(plan)?);
        c.args(["pip", "install", "--python"]).arg(python);
        c
    } else {
        let mut c = Command::new(python);
        c.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
        ]);
        c
    };
    cmd.args(requirements);
    run_step(&mut cmd, what, plan.settings.install_timeout)
        .await
        .map_err(|e| {
            let shown: Vec<String> = requirements.iter().map(|r| quoted(r)).collect();
            Error::pool(format!(
                "{e}\n(to retry by hand: {} -m pip install {})",
                python.display(),
                shown.join(" ")
            ))
        })
}

/// Lines of a step's output worth showing as progress.
fn is_progress_line(line: &str) -> bool {
    [
        "Collecting",
        "Downloading",
        "Installing",
        "Successfully",
        "Building",
        "Resolved",
        "Installed",
        "Prepared",
    ]
    .iter()
    .any(|p| line.trim_start().starts_with(p))
}

/// Runs one step, echoing its progress lines; on failure or timeout, the error carries its output.
async fn run_step(cmd: &mut Command, what: &str, timeout: Duration) -> Result<(), Error> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            let program = cmd.as_std().get_program().to_string_lossy().into_owned();
            Error::pool_from(
                format!("cannot {what}: cannot run {program}: {e} (is it installed and on PATH?)"),
                e,
            )
        })?;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let readers = (
        child
            .stdout
            .take()
            .map(|s| tokio::spawn(collect_lines(s, log.clone()))),
        child
            .stderr
            .take()
            .map(|s| tokio::spawn(collect_lines(s, log.clone()))),
    );
    let status = tokio::time::timeout(timeout, child.wait()).await;
    for reader in [readers.0, readers.1].into_iter().flatten() {
        match status {
            Ok(_) => {
                let _ = reader.await;
            }
            Err(_) => reader.abort(),
        }
    }
    let output = || {
        let lines = log.lock().map(|l| l.clone()).unwrap_or_default();
        let tail = lines.len().saturating_sub(60);
        lines[tail..].join("\n")
    };
    match status {
        Err(_) => {
            let _ = child.kill().await;
            Err(Error::pool(format!(
                "could not {what}: it did not finish within {} ms (python_packages.timeout_ms); its output:\n{}",
                timeout.as_millis(),
                output()
            )))
        }
        Ok(Err(e)) => Err(Error::pool_from(format!("could not {what}: {e}"), e)),
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(Error::pool(format!(
            "could not {what} ({s}); its output:\n{}",
            output()
        ))),
    }
}

async fn collect_lines(stream: impl AsyncRead + Unpin, log: Arc<Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if is_progress_line(&line) {
            eprintln!("snakepit:   {}", line.trim());
        }
        if let Ok(mut l) = log.lock() {
            l.push(line);
        }
    }
}

/// Points the environment's scripts (shebangs, `activate`) at its final folder after the rename.
///
/// Workers run `bin/python` directly, which needs nothing of this; it keeps `bin/pip` and the
/// activation scripts usable for people.
fn relocate_scripts(tmp: &Path, dir: &Path) {
    let (from, to) = (tmp.display().to_string(), dir.display().to_string());
    let Ok(entries) = std::fs::read_dir(tmp.join("bin")) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_symlink() || !path.is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binary files
        };
        if text.contains(&from) {
            let _ = std::fs::write(&path, text.replace(&from, &to));
        }
    }
}
