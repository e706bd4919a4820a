//! Runs a vendor tool with a timeout, killing it when it does not answer in time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;

use crate::config::{DetectorConfig, Tool};
use crate::report::Diagnostic;

/// Output a parser could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnexpectedOutput {
    pub(crate) reason: String,
}

impl UnexpectedOutput {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for UnexpectedOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "printed something unexpected: {}", self.reason)
    }
}

/// What a tool printed when it exited successfully.
#[derive(Debug)]
pub(crate) struct ToolOutput {
    pub(crate) stdout: String,
}

/// Why a tool gave no usable output.
#[derive(Debug)]
pub(crate) enum ToolFailure {
    /// The tool is not installed: the accelerator is simply not present.
    NotFound,
    /// The tool exists but could not be started.
    Spawn(std::io::Error),
    /// The tool did not exit within the timeout and was killed.
    TimedOut(Duration),
    /// The tool exited unsuccessfully.
    Failed {
        status: ExitStatus,
        /// The first lines of stdout and stderr together.
        output: String,
    },
}

impl ToolFailure {
    /// Turns the failure into a diagnostic; `None` for a tool that is not installed.
    pub(crate) fn diagnostic(&self, tool: Tool) -> Option<Diagnostic> {
        let message = match self {
            ToolFailure::NotFound => return None,
            ToolFailure::Spawn(err) => format!("could not be started: {err}"),
            ToolFailure::TimedOut(timeout) => format!(
                "did not answer within {} ms and was killed (raise DetectorConfig::timeout if the driver is slow to load)",
                timeout.as_millis()
            ),
            ToolFailure::Failed { status, output } => {
                if output.is_empty() {
                    format!("failed with {status} and printed nothing")
                } else {
                    format!("failed with {status}: {output}")
                }
            }
        };
        Some(Diagnostic::new(tool.program(), message))
    }
}

impl fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolFailure::NotFound => f.write_str("not installed"),
            ToolFailure::Spawn(err) => write!(f, "could not be started: {err}"),
            ToolFailure::TimedOut(t) => write!(f, "timed out after {} ms", t.as_millis()),
            ToolFailure::Failed { status, output } => write!(f, "failed with {status}: {output}"),
        }
    }
}

/// How many times a spawn is retried when the executable is still open for writing elsewhere.
const TEXT_FILE_BUSY_RETRIES: u32 = 3;
/// `ETXTBSY` on Linux and macOS.
const ETXTBSY: i32 = 26;

/// Runs `tool` with `args`, honouring the config's overrides, search path and timeout.
pub(crate) async fn run_tool(
    config: &DetectorConfig,
    tool: Tool,
    args: &[&str],
) -> Result<ToolOutput, ToolFailure> {
    let program = resolve(config, tool).await.ok_or(ToolFailure::NotFound)?;
    let mut attempt = 0;
    let child = loop {
        let spawned = Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => break child,
            // A file just written by another thread can still be open in a forked child for
            // a moment; the kernel then refuses to execute it.
            Err(err) if err.raw_os_error() == Some(ETXTBSY) && attempt < TEXT_FILE_BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ToolFailure::NotFound)
            }
            Err(err) => return Err(ToolFailure::Spawn(err)),
        }
    };
    // Dropping the future on timeout drops the child, and kill_on_drop kills it.
    let output = match tokio::time::timeout(config.timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(ToolFailure::Spawn(err)),
        Err(_) => return Err(ToolFailure::TimedOut(config.timeout)),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(ToolOutput { stdout });
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(ToolFailure::Failed {
        status: output.status,
        output: summarize(&format!("{}\n{}", stdout.trim(), stderr.trim())),
    })
}

/// Keeps the first few non-empty lines of a tool's output, joined by spaces, for a diagnostic.
pub(crate) fn summarize(text: &str) -> String {
    const MAX_CHARS: usize = 400;
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    if joined.chars().count() > MAX_CHARS {
        let cut: String = joined.chars().take(MAX_CHARS).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

/// Finds the executable for `tool`: the override, else the first match on the search path.
async fn resolve(config: &DetectorConfig, tool: Tool) -> Option<PathBuf> {
    if let Some(path) = config.tools.get(tool) {
        return Some(path.clone());
    }
    let search_path = match &config.search_path {
        Some(path) => path.clone(),
        None => std::env::var_os("PATH")?,
    };
    for dir in std::env::split_paths(&search_path) {
        let candidate = dir.join(tool.program());
        if is_executable(&candidate).await {
            return Some(candidate);
        }
    }
    None
}

async fn is_executable(path: &Path) -> bool {
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Returns `value` unless it is one of nvidia-smi's placeholders (`[N/A]`, `[Not Supported]`, ...).
pub(crate) fn reported(value: &str) -> Option<&str> {
    let value = value.trim();
    let placeholder = value.is_empty()
        || value.starts_with('[')
        || value.eq_ignore_ascii_case("n/a")
        || value.eq_ignore_ascii_case("not supported");
    (!placeholder).then_some(value)
}
