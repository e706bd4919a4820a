//! A zygote's child as seen by the host: proven ours by its start time, its exit reported by the zygote.
//!
//! The host cannot `waitpid` a process it did not fork. The zygote reads the child's start time
//! from `/proc/<pid>/stat` before it can reap it and reports it with the pid; the host accepts
//! the pid only while `/proc` still shows that start time, and signals its group only after the
//! same check ([`crate::process::WorkerProcess::signal_group`]). The exit is learnt from the
//! zygote, which reaps the child and reports how it ended over the control socket (woken by
//! SIGCHLD, so at once). If the zygote dies first, nobody reports: the watcher then polls
//! `/proc` for the pid with its start time until it is gone.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::process::{ExitInfo, ExitKind, HostSignal, StderrTail, WorkerProcess};
use crate::registry::process_stat;

/// Poll interval once the zygote that would report the exit is gone.
const ORPHAN_POLL: Duration = Duration::from_millis(50);

/// Whether `pid` is still (or, as a zombie, was) the process that started at `start_time`.
pub(crate) fn is_same_process(pid: u32, start_time: u64) -> bool {
    matches!(process_stat(pid), Some((_, t)) if t == start_time)
}

/// Wraps the forked child `pid` (started at `start_time`) as a [`WorkerProcess`].
pub(crate) fn adopt(
    pid: u32,
    start_time: u64,
    exit_status: oneshot::Receiver<ExitKind>,
    stderr_tail: StderrTail,
) -> WorkerProcess {
    let (tx, rx) = watch::channel(None);
    let host_signal = Arc::new(AtomicU8::new(HostSignal::None as u8));
    if !is_same_process(pid, start_time) {
        let _ = tx.send(Some(ExitInfo::unknown(
            "exited before the host could watch it",
        )));
        return WorkerProcess::adopted(pid, start_time, rx, stderr_tail, host_signal);
    }
    let sent = host_signal.clone();
    tokio::spawn(async move {
        let mut info = match exit_status.await {
            Ok(kind) => ExitInfo::new(kind),
            Err(_) => {
                // The zygote is gone: its orphan now belongs to init, which reaps it unseen.
                while matches!(process_stat(pid), Some((false, t)) if t == start_time) {
                    tokio::time::sleep(ORPHAN_POLL).await;
                }
                ExitInfo::unknown("exited (status unknown: its zygote was gone)")
            }
        };
        info.host_signal = HostSignal::from_u8(sent.load(Ordering::SeqCst));
        let _ = tx.send(Some(info));
    });
    WorkerProcess::adopted(pid, start_time, rx, stderr_tail, host_signal)
}
