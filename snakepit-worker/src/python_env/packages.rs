//! `python_packages`: which requirements an interpreter lacks, and the error that names them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use snakepit_core::Error;
use tokio::process::Command;

use super::{PythonChoice, PythonSource};

/// Prints the requirements (argv[1], a JSON list) the interpreter does not satisfy, as JSON.
/// Presence is always checked; the version too when `packaging` is importable.
const PROBE: &str = r#"
import json, re, sys
from importlib import metadata
missing = []
for req in json.loads(sys.argv[1]):
    name = re.split(r"[^A-Za-z0-9._-]", req, maxsplit=1)[0]
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        missing.append(req)
        continue
    try:
        from packaging.requirements import Requirement
    except ImportError:
        continue
    try:
        if not Requirement(req).specifier.contains(have, prereleases=True):
            missing.append(req)
    except Exception:
        pass
print(json.dumps(missing))
"#;

/// Returns the requirements of `packages` that `python` does not satisfy.
pub async fn missing_packages(
    python: &Path,
    packages: &[String],
    timeout: Duration,
) -> Result<Vec<String>, Error> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(packages)
        .map_err(|e| Error::pool_from(format!("cannot encode python_packages: {e}"), e))?;
    let run = Command::new(python)
        .args(["-c", PROBE, &list])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            return Err(Error::timeout(
                format!("checking python_packages with {}", python.display()),
                timeout,
            ))
        }
        Ok(Err(e)) => {
            return Err(Error::pool(format!(
                "cannot run {} to check python_packages: {e}",
                python.display()
            )))
        }
        Ok(Ok(out)) => out,
    };
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<Vec<String>>(text.trim()) {
        Ok(missing) if out.status.success() => Ok(missing),
        _ => Err(Error::pool(format!(
            "{} could not check python_packages ({}): {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// The shell spelling of a requirement (single-quoted).
pub(crate) fn quoted(req: &str) -> String {
    format!("'{}'", req.replace('\'', "'\\''"))
}

/// Fails with a message naming each missing requirement and the command that installs it.
///
/// Used for interpreters snakepit does not own (`SNAKEPIT_PYTHON`, `python_executable`,
/// the system Python, a project `.venv`): they are checked, never changed.
pub(crate) async fn require_packages(
    choice: &PythonChoice,
    packages: &[String],
    timeout: Duration,
) -> Result<(), Error> {
    let missing = missing_packages(&choice.python, packages, timeout).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(|r| format!("'{r}'")).collect();
    let args: Vec<String> = missing.iter().map(|r| quoted(r)).collect();
    let alternative = match choice.source {
        PythonSource::EnvVar | PythonSource::Configured | PythonSource::System => {
            ", or drop the explicit interpreter so snakepit builds its own environment"
        }
        _ => "",
    };
    Err(Error::pool(format!(
        "python package{} {} from python_packages {} not installed for {} ({}); install with `{} -m pip install {}`{alternative}",
        if missing.len() == 1 { "" } else { "s" },
        names.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
        choice.python.display(),
        choice.reason,
        choice.python.display(),
        args.join(" "),
    )))
}
