//! One Python process: spawned in its own process group, output drained, exit watched, stopped for sure.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use snakepit_telemetry::Redactor;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::watch;

mod exit;

pub use exit::{ExitInfo, ExitKind, HostSignal};

/// Lines of stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 40;

/// The last lines a process (or a zygote and its children) wrote to stderr.
pub(crate) type StderrTail = Arc<Mutex<VecDeque<String>>>;

/// How a worker process was obtained, which decides when its group may be signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Spawned by this host, which reaps it: its pid stays ours until the exit is recorded.
    Spawned,
    /// Forked by a zygote (not our child) at this start time: its group is signalled only
    /// while its exit is not recorded and `/proc` still shows that start time.
    Forked(u64),
}

/// Environment variable telling the worker that its stdin is the host pipe (EOF = host gone).
pub const HOST_PIPE_ENV_VAR: &str = "SNAKEPIT_HOST_PIPE";

/// Where a worker's stdout and stderr lines go besides the debug log (`log_python_output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PythonOutput {
    /// Only to the `snakepit::python` debug log (the seeds' default: hidden).
    Hidden,
    /// Also to the host's stderr, each line prefixed with `[worker id]`.
    Echoed,
}

/// A worker process that is killed (with its whole group) when dropped.
///
/// A spawned process's stdin is a pipe whose write end only this handle holds (Rust opens pipes
/// close-on-exec, so no other child inherits it). When the host dies, even by SIGKILL, the
/// kernel closes that end and the worker reads end of file: it knows at once that its host is gone.
/// A forked one watches the host through a pidfd instead (see `crate::zygote`).
#[derive(Debug)]
pub(crate) struct WorkerProcess {
    pid: u32,
    exit: watch::Receiver<Option<ExitInfo>>,
    stderr_tail: StderrTail,
    host_signal: Arc<AtomicU8>,
    _host_pipe: Option<ChildStdin>,
    origin: Origin,
}

impl WorkerProcess {
    /// Spawns `cmd` as the leader of a new process group, draining its stdout and stderr.
    pub(crate) fn spawn(
        mut cmd: Command,
        label: &str,
        output: PythonOutput,
    ) -> std::io::Result<Self> {
        cmd.stdin(Stdio::piped())
            .env(HOST_PIPE_ENV_VAR, "stdin")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let redactor = Arc::new(redactor_for(&cmd));
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("child exited before its pid was read"))?;
        let host_pipe = child.stdin.take();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(drain(
                out,
                label.to_owned(),
                "stdout",
                None,
                output,
                redactor.clone(),
            ));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(drain(
                err,
                label.to_owned(),
                "stderr",
                Some(stderr_tail.clone()),
                output,
                redactor,
            ));
        }
        let (tx, exit) = watch::channel(None);
        let host_signal = Arc::new(AtomicU8::new(HostSignal::None as u8));
        let sent = host_signal.clone();
        // The waiter owns the child and ends when the process does (Drop of the handle kills it).
        tokio::spawn(async move {
            let mut info = match child.wait().await {
                Ok(status) => ExitInfo::new(status.into()),
                Err(e) => ExitInfo::unknown(format!("wait failed: {e}")),
            };
            info.host_signal = HostSignal::from_u8(sent.load(Ordering::SeqCst));
            let _ = tx.send(Some(info));
        });
        Ok(Self {
            pid,
            exit,
            stderr_tail,
            host_signal,
            _host_pipe: host_pipe,
            origin: Origin::Spawned,
        })
    }

    /// Wraps a process this host did not spawn, whose exit `exit` reports (a zygote's child).
    ///
    /// `host_signal` is shared with the exit watcher, which stamps it on the exit it reports.
    pub(crate) fn adopted(
        pid: u32,
        start_time: u64,
        exit: watch::Receiver<Option<ExitInfo>>,
        stderr_tail: StderrTail,
        host_signal: Arc<AtomicU8>,
    ) -> Self {
        Self {
            pid,
            exit,
            stderr_tail,
            host_signal,
            _host_pipe: None,
            origin: Origin::Forked(start_time),
        }
    }

    /// Returns the shared stderr tail (a zygote's children write to the zygote's stderr).
    pub(crate) fn stderr_tail_handle(&self) -> StderrTail {
        self.stderr_tail.clone()
    }

    /// Records why the host signals the process (the first reason sticks) and sends `signal`.
    pub(crate) fn signal_for(&self, why: HostSignal, signal: Signal) {
        let _ = self.host_signal.compare_exchange(
            HostSignal::None as u8,
            why as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.signal_group(signal);
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns how the process ended, or `None` while it runs.
    pub(crate) fn exit_info(&self) -> Option<ExitInfo> {
        self.exit.borrow().clone()
    }

    /// Waits until the process has ended.
    pub(crate) async fn exited(&self) -> ExitInfo {
        let mut rx = self.exit.clone();
        loop {
            if let Some(info) = rx.borrow_and_update().clone() {
                return info;
            }
            if rx.changed().await.is_err() {
                return rx
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| ExitInfo::unknown("unknown exit"));
            }
        }
    }

    /// Returns the last lines the process wrote to stderr.
    pub(crate) fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Sends a signal to the whole process group.
    ///
    /// The group id is the leader's pid; Linux does not reuse a pid while a group with that id
    /// has members, so the signal cannot reach a stranger.
    ///
    /// A forked process is not our child: its pid may be reaped and reused at any time, so it
    /// is signalled only while its recorded start time still matches (as the orphan sweep does).
    pub(crate) fn signal_group(&self, signal: Signal) {
        if let Origin::Forked(start_time) = self.origin {
            if self.exit_info().is_some() || !crate::zygote::is_same_process(self.pid, start_time) {
                return;
            }
        }
        let _ = killpg(Pid::from_raw(self.pid as i32), signal);
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL; returns once the leader is gone.
    pub(crate) async fn stop(&self, grace: Duration) -> ExitInfo {
        if let Some(info) = self.exit_info() {
            self.signal_group(Signal::SIGKILL);
            return info;
        }
        self.signal_for(HostSignal::Stop, Signal::SIGTERM);
        let info = match tokio::time::timeout(grace, self.exited()).await {
            Ok(info) => info,
            Err(_) => {
                tracing::warn!(
                    pid = self.pid,
                    grace_ms = grace.as_millis() as u64,
                    "worker ignored SIGTERM; sending SIGKILL"
                );
                self.signal_group(Signal::SIGKILL);
                self.exited().await
            }
        };
        // Anything the worker forked into its group goes with it.
        self.signal_group(Signal::SIGKILL);
        info
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // A dropped handle never leaves its process group behind.
        self.signal_group(Signal::SIGKILL);
    }
}

/// Redacts the values of the secret-named variables the worker sees (its own and the host's),
/// the run token among them, from everything it prints.
fn redactor_for(cmd: &Command) -> Redactor {
    let own: Vec<(String, String)> = cmd
        .as_std()
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    let host: Vec<(String, String)> = std::env::vars().collect();
    Redactor::from_env(
        own.iter()
            .chain(host.iter())
            .map(|(k, v)| (k.as_str(), v.as_str())),
        std::iter::empty(),
    )
}

/// Forwards a worker's output, line by line, to the host log (with the worker id, secrets
/// redacted) instead of the console; stderr's last lines are kept for error messages.
async fn drain(
    stream: impl AsyncRead + Unpin,
    label: String,
    which: &'static str,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
    output: PythonOutput,
    redactor: Arc<Redactor>,
) {
    let mut lines = BufReader::new(stream).lines();
    let mut host_stderr = tokio::io::stderr();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = redactor.redact(&line).into_owned();
        tracing::info!(target: "snakepit::python", worker = %label, stream = which, "{line}");
        if output == PythonOutput::Echoed {
            // A closed host stderr only loses the echo; the line still reaches the log and tail.
            let _ = host_stderr
                .write_all(format!("[{label}] {line}\n").as_bytes())
                .await;
        }
        if let Some(tail) = &tail {
            if let Ok(mut t) = tail.lock() {
                if t.len() == STDERR_TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    }
}
