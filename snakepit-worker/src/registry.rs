//! The process registry: a file per host run listing its workers, so a later run can kill
//! the leftovers of a host that died without cleaning up, and never a stranger.
//!
//! Each entry records the worker's pid, its start time (field 22 of `/proc/<pid>/stat`) and
//! the run id. A process is only ever signalled when all three still match: same pid, same
//! start time, and a command line that carries the run id. PID reuse cannot fool that.
//! Processes a tool started inherit the worker's `SNAKEPIT_RUN_ID` environment variable; the
//! sweep reaps those too (they may outlive their worker), proving ownership by that variable and
//! the process's uid, and it removes the dead run's private directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use snakepit_core::{Error, RunId};

/// One recorded worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// The worker's id.
    pub worker_id: String,
    /// Its OS pid (also its process group id).
    pub pid: u32,
    /// Its start time in clock ticks since boot, from `/proc/<pid>/stat`.
    pub start_time: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RunFile {
    run_id: String,
    host_pid: u32,
    host_start_time: u64,
    workers: BTreeMap<String, RegistryEntry>,
    /// The run's private directory (sockets, ready files), removed when the host is found dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_dir: Option<PathBuf>,
}

/// The registry file of the current run.
#[derive(Debug)]
pub struct ProcessRegistry {
    path: PathBuf,
    state: Mutex<RunFile>,
}

/// Returns the start time of a live process, or `None` when it is gone or a zombie.
pub fn process_start_time(pid: u32) -> Option<u64> {
    match process_stat(pid)? {
        (true, _) => None,
        (false, start_time) => Some(start_time),
    }
}

/// Returns whether `pid` is a zombie and its start time, or `None` when there is no such pid.
pub(crate) fn process_stat(pid: u32) -> Option<(bool, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields resume after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = fields.first() == Some(&"Z");
    Some((zombie, fields.get(19)?.parse().ok()?))
}

fn command_line_mentions(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).any(|arg| arg == needle.as_bytes()))
        .unwrap_or(false)
}

/// The default registry folder: `<tmp>/snakepit-registry-<uid>` (mode 0700).
pub fn default_registry_dir() -> PathBuf {
    std::env::temp_dir().join(format!("snakepit-registry-{}", nix::unistd::getuid()))
}

impl ProcessRegistry {
    /// Creates the run file of `run_id` in `dir` (created 0700 if missing).
    pub fn create(dir: &Path, run_id: &RunId) -> Result<Self, Error> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                Error::pool_from(
                    format!("cannot create the process registry {}: {e}", dir.display()),
                    e,
                )
            })?;
        let meta = std::fs::metadata(dir)
            .map_err(|e| Error::pool_from(format!("cannot read {}: {e}", dir.display()), e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::pool(format!(
                "process registry {} is accessible to other users (mode {:o}); remove it or make it 0700",
                dir.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let host_pid = std::process::id();
        let state = RunFile {
            run_id: run_id.to_string(),
            host_pid,
            host_start_time: process_start_time(host_pid).unwrap_or(0),
            workers: BTreeMap::new(),
            run_dir: None,
        };
        let registry = Self {
            path: dir.join(format!("{run_id}.json")),
            state: Mutex::new(state),
        };
        registry.persist()?;
        Ok(registry)
    }

    fn persist(&self) -> Result<(), Error> {
        let state = self
            .state
            .lock()
            .map_err(|_| Error::pool("process registry lock poisoned"))?;
        let text = serde_json::to_vec_pretty(&*state)
            .map_err(|e| Error::pool_from(format!("cannot encode the registry: {e}"), e))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| {
                Error::pool_from(
                    format!(
                        "cannot write the process registry {}: {e}",
                        self.path.display()
                    ),
                    e,
                )
            })
    }

    /// Records a started worker (before it is handed out, so a crash later is still tracked).
    pub fn register(&self, worker_id: &str, pid: u32) -> Result<(), Error> {
        let Some(start_time) = process_start_time(pid) else {
            return Ok(());
        };
        if let Ok(mut s) = self.state.lock() {
            s.workers.insert(
                worker_id.to_owned(),
                RegistryEntry {
                    worker_id: worker_id.to_owned(),
                    pid,
                    start_time,
                },
            );
        }
        self.persist()
    }

    /// Records the run's private directory, so a sweep after a host crash removes it.
    pub fn record_run_dir(&self, run_dir: &Path) -> Result<(), Error> {
        if let Ok(mut s) = self.state.lock() {
            s.run_dir = Some(run_dir.to_path_buf());
        }
        self.persist()
    }

    /// Forgets a worker whose process has ended.
    pub fn unregister(&self, worker_id: &str) -> Result<(), Error> {
        if let Ok(mut s) = self.state.lock() {
            s.workers.remove(worker_id);
        }
        self.persist()
    }

    /// Returns the workers recorded for this run.
    pub fn entries(&self) -> Vec<RegistryEntry> {
        self.state
            .lock()
            .map(|s| s.workers.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Returns the entry of the worker whose process is `pid`, if it is recorded.
    pub fn entry_by_pid(&self, pid: u32) -> Option<RegistryEntry> {
        self.state
            .lock()
            .ok()?
            .workers
            .values()
            .find(|e| e.pid == pid)
            .cloned()
    }

    /// Whether `entry`'s process is provably this run's: the recorded start time and a
    /// command line carrying the run id.
    pub fn owns(&self, entry: &RegistryEntry) -> bool {
        let Ok(s) = self.state.lock() else {
            return false;
        };
        process_start_time(entry.pid) == Some(entry.start_time)
            && command_line_mentions(entry.pid, &s.run_id)
    }

    /// SIGKILLs the process group of every recorded worker that is still the process recorded
    /// (same pid and start time): the immediate stop after a second Ctrl-C. Returns the pids.
    pub fn kill_all(&self) -> Vec<u32> {
        let entries: Vec<RegistryEntry> = match self.state.lock() {
            Ok(s) => s.workers.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut killed = Vec::new();
        for e in entries {
            if process_start_time(e.pid) == Some(e.start_time) {
                let _ = killpg(Pid::from_raw(e.pid as i32), Signal::SIGKILL);
                killed.push(e.pid);
            }
        }
        killed
    }

    /// Returns the path of this run's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ProcessRegistry {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Leftover worker processes of dead hosts that were killed.
    pub killed: Vec<u32>,
    /// Processes started by tools of dead runs (they carried the run's id) that were killed.
    pub reaped: Vec<u32>,
    /// Run files of dead hosts that were removed.
    pub stale_runs: Vec<String>,
    /// Private run directories of dead hosts that were removed.
    pub removed_dirs: Vec<PathBuf>,
}

/// Kills the workers of runs whose host is gone, then removes their run files.
///
/// A recorded process is signalled only if its pid still has the recorded start time and its
/// command line carries the run id; anything else is left alone. Runs whose host still lives
/// (same pid and start time) are never touched.
pub async fn sweep_orphans(dir: &Path) -> SweepReport {
    let mut report = SweepReport::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return report;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(run) = std::fs::read(&path)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<RunFile>(&b).map_err(|_| ()))
        else {
            continue;
        };
        let host_alive = run.host_start_time != 0
            && process_start_time(run.host_pid) == Some(run.host_start_time);
        if host_alive {
            continue;
        }
        let ours: Vec<u32> = run
            .workers
            .values()
            .filter(|w| {
                process_start_time(w.pid) == Some(w.start_time)
                    && command_line_mentions(w.pid, &run.run_id)
            })
            .map(|w| w.pid)
            .collect();
        for pid in &ours {
            let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < deadline
            && ours.iter().any(|p| process_start_time(*p).is_some())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for w in run.workers.values() {
            // Re-check identity before escalating: the pid may have died and been reused meanwhile.
            if ours.contains(&w.pid) && process_start_time(w.pid) == Some(w.start_time) {
                let _ = killpg(Pid::from_raw(w.pid as i32), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(w.pid as i32), Signal::SIGKILL);
            }
        }
        report.reaped.extend(reap_run_descendants(&run.run_id));
        if let Some(run_dir) = run.run_dir.as_deref() {
            if remove_run_dir(run_dir, &run.run_id) {
                report.removed_dirs.push(run_dir.to_path_buf());
            }
        }
        report.killed.extend(ours);
        report.stale_runs.push(run.run_id);
        let _ = std::fs::remove_file(&path);
    }
    report
}

/// SIGKILLs every process of ours whose environment carries `SNAKEPIT_RUN_ID=<run_id>`: what
/// the tools of a dead run started (in the worker's group or not). Returns their pids.
///
/// The run id is random and only our workers set it, and `/proc/<pid>/environ` is readable only
/// for processes of our own uid, so a match proves the process is a leftover of that run.
fn reap_run_descendants(run_id: &str) -> Vec<u32> {
    let needle = format!("{}={run_id}", crate::worker::RUN_ID_ENV_VAR);
    let me = std::process::id();
    let mut reaped = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return reaped;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let Some(start) = process_start_time(pid) else {
                continue;
            };
            // Re-read the identity right before the signal, so a pid that died is not hit.
            if process_start_time(pid) == Some(start) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                reaped.push(pid);
            }
        }
    }
    reaped
}

/// Removes a dead run's private directory, only if it is ours: a directory (not a link) owned
/// by our uid whose name starts with `snakepit-<run_id>-`. Returns whether it was removed.
fn remove_run_dir(dir: &Path, run_id: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return false;
    };
    let named_for_run = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(&format!("snakepit-{run_id}-")));
    if !meta.is_dir() || meta.uid() != nix::unistd::getuid().as_raw() || !named_for_run {
        return false;
    }
    std::fs::remove_dir_all(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_this_process_is_known_and_stable() {
        let me = std::process::id();
        let a = process_start_time(me).unwrap();
        assert_eq!(process_start_time(me), Some(a));
        assert_eq!(process_start_time(u32::MAX - 1), None);
    }

    #[test]
    fn registry_rejects_a_folder_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = ProcessRegistry::create(&open, &RunId::generate()).unwrap_err();
        assert!(
            err.to_string().contains("accessible to other users"),
            "{err}"
        );
    }
}
