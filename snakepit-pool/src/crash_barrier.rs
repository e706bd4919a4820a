//! The crash barrier: classifies each worker death, counts crashes per worker slot in a rolling
//! window, stops a slot that crash-loops, taints a crashed worker's GPU device for `taint_ms`,
//! and says whether a call whose worker died under it may be retried on another worker.
//!
//! Pure logic driven by `tokio::time::Instant` (tested under paused time). Crashes are counted
//! per *slot* (the n-th worker of the pool), not per worker id, because every replacement gets
//! a fresh id: a slot whose workers keep dying is what a crash loop is.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use snakepit_core::config::{CrashBarrierSettings, CrashRetry};
use snakepit_core::WorkerId;
use snakepit_worker::{ExitInfo, ExitKind, HostSignal};
use tokio::time::Instant;

/// Backoff before the second restart of a slot within its window; it doubles with each further
/// crash. The first crash in a window restarts at once, as the seeds' supervisor does.
const FIRST_RESTART_BACKOFF: Duration = Duration::from_millis(100);
/// Longest backoff between restarts of a slot.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);
/// SIGKILL's number.
const SIGKILL: i32 = 9;

/// Why a worker died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashKind {
    /// The process exited by itself with this code (e.g. `os._exit(3)`).
    Exit(i32),
    /// A signal nobody on the host sent killed it (SIGSEGV, SIGABRT, a SIGKILL from outside).
    Signal(i32),
    /// The kernel's OOM killer ended it (SIGKILL while the cgroup's `oom_kill` count rose).
    OomKilled,
    /// The host killed it after it missed `max_missed_heartbeats` heartbeats.
    HeartbeatLost,
    /// It never became ready (start-up failed).
    StartupFailure,
}

impl CrashKind {
    /// Returns a stable snake_case name for events and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashKind::Exit(_) => "exit",
            CrashKind::Signal(_) => "signal",
            CrashKind::OomKilled => "oom_killed",
            CrashKind::HeartbeatLost => "heartbeat_lost",
            CrashKind::StartupFailure => "startup_failure",
        }
    }
}

impl fmt::Display for CrashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashKind::Exit(code) => write!(f, "exited with code {code}"),
            CrashKind::Signal(sig) => write!(f, "killed by signal {sig}"),
            CrashKind::OomKilled => f.write_str("killed by the kernel's OOM killer"),
            CrashKind::HeartbeatLost => f.write_str("killed after missing its heartbeats"),
            CrashKind::StartupFailure => f.write_str("failed to start"),
        }
    }
}

/// Classifies an exit the host did not ask for; `None` when the host stopped or killed the
/// worker itself (shutdown, recycling, a timed-out call), which is not a crash.
pub(crate) fn classify(exit: &ExitInfo, oom_kill_rose: bool) -> Option<CrashKind> {
    match exit.host_signal {
        HostSignal::HeartbeatLost => return Some(CrashKind::HeartbeatLost),
        HostSignal::Stop | HostSignal::Kill => return None,
        HostSignal::None => {}
    }
    Some(match exit.kind {
        ExitKind::Signalled { signal: SIGKILL } if oom_kill_rose => CrashKind::OomKilled,
        ExitKind::Signalled { signal } => CrashKind::Signal(signal),
        ExitKind::Exited { code } => CrashKind::Exit(code),
        // It did end unasked; with no code to report it counts as an exit (its reason is
        // in the crash event's `exit` text).
        ExitKind::Unknown { .. } => CrashKind::Exit(-1),
    })
}

/// Reads the `oom_kill` counter of this process's cgroup (v2), which its workers share.
pub(crate) fn oom_kill_count() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let events =
        std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.events", path.trim())).ok()?;
    events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// What to do with a slot after one of its workers crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Start a replacement after this delay (backoff, or until the device's taint ends).
    Restart(Duration),
    /// The slot crashed more than `max_restarts` times within `window_seconds`: no more restarts.
    Stop {
        /// Crashes counted in the window.
        crashes: usize,
    },
}

#[derive(Debug, Clone)]
struct Member {
    slot: usize,
    device: Option<String>,
    oom_at_start: Option<u64>,
}

/// The crash barrier of one pool.
#[derive(Debug)]
pub(crate) struct CrashBarrier {
    settings: CrashBarrierSettings,
    members: HashMap<WorkerId, Member>,
    history: HashMap<usize, VecDeque<Instant>>,
    stopped: BTreeSet<usize>,
    /// Slots whose worker left, waiting for a replacement to take them (lowest first).
    free: BTreeSet<usize>,
    next_slot: usize,
    taints: BTreeMap<String, Instant>,
    kinds: BTreeMap<&'static str, u64>,
}

impl CrashBarrier {
    pub(crate) fn new(settings: CrashBarrierSettings) -> Self {
        Self {
            settings,
            members: HashMap::new(),
            history: HashMap::new(),
            stopped: BTreeSet::new(),
            free: BTreeSet::new(),
            next_slot: 0,
            taints: BTreeMap::new(),
            kinds: BTreeMap::new(),
        }
    }

    /// Takes a slot for a worker about to start: one a departed worker left, else a new one.
    pub(crate) fn take_slot(&mut self) -> usize {
        match self.free.pop_first() {
            Some(slot) => slot,
            None => {
                self.next_slot += 1;
                self.next_slot - 1
            }
        }
    }

    /// Gives back a slot whose start was abandoned (the pool is stopping).
    pub(crate) fn give_back(&mut self, slot: usize) {
        if !self.stopped.contains(&slot) {
            self.free.insert(slot);
        }
    }

    /// Records that worker `id` fills `slot` (and runs on `device`, if it was given one).
    pub(crate) fn assign(&mut self, id: &WorkerId, slot: usize, device: Option<String>) {
        self.members.insert(
            id.clone(),
            Member {
                slot,
                device,
                oom_at_start: oom_kill_count(),
            },
        );
    }

    /// Returns the slot worker `id` fills.
    pub(crate) fn slot_of(&self, id: &WorkerId) -> Option<usize> {
        self.members.get(id).map(|m| m.slot)
    }

    /// Forgets a worker that left without crashing (recycled, stopped); its slot is free again.
    pub(crate) fn release(&mut self, id: &WorkerId) {
        if let Some(m) = self.members.remove(id) {
            self.give_back(m.slot);
        }
    }

    /// Whether the cgroup's OOM-kill count rose since worker `id` started.
    pub(crate) fn oom_kill_rose(&self, id: &WorkerId) -> bool {
        let before = self.members.get(id).and_then(|m| m.oom_at_start);
        matches!((before, oom_kill_count()), (Some(b), Some(a)) if a > b)
    }

    /// Records a crash of worker `id` (or of a start-up in `slot`) and decides the slot's fate.
    pub(crate) fn record_crash(
        &mut self,
        slot: usize,
        id: Option<&WorkerId>,
        kind: CrashKind,
        now: Instant,
    ) -> Verdict {
        *self.kinds.entry(kind.as_str()).or_default() += 1;
        let device = id
            .and_then(|id| self.members.remove(id))
            .and_then(|m| m.device);
        if let Some(device) = &device {
            if !self.settings.taint.is_zero() {
                self.taints
                    .insert(device.clone(), now + self.settings.taint);
            }
        }
        if !self.settings.enabled {
            self.free.insert(slot);
            return Verdict::Restart(self.taint_wait(device.as_deref(), now));
        }
        let window = self.settings.window;
        let crashes = self.history.entry(slot).or_default();
        crashes.push_back(now);
        while crashes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > window)
        {
            crashes.pop_front();
        }
        let count = crashes.len();
        if count > self.settings.max_restarts as usize {
            self.stopped.insert(slot);
            return Verdict::Stop { crashes: count };
        }
        self.free.insert(slot);
        let backoff = if count <= 1 {
            Duration::ZERO
        } else {
            let exp = u32::try_from(count - 2).unwrap_or(u32::MAX).min(16);
            FIRST_RESTART_BACKOFF
                .saturating_mul(1 << exp)
                .min(MAX_RESTART_BACKOFF)
        };
        Verdict::Restart(backoff.max(self.taint_wait(device.as_deref(), now)))
    }

    fn taint_wait(&self, device: Option<&str>, now: Instant) -> Duration {
        device
            .and_then(|d| self.taints.get(d))
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// The devices tainted at `now` (a crash on them less than `taint_ms` ago).
    pub(crate) fn tainted_devices(&self, now: Instant) -> Vec<String> {
        self.taints
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// The slots that stopped restarting.
    pub(crate) fn stopped_slots(&self) -> Vec<usize> {
        self.stopped.iter().copied().collect()
    }

    /// Crash counts by kind (`exit`, `signal`, `oom_killed`, `heartbeat_lost`, `startup_failure`).
    pub(crate) fn crash_counts(&self) -> BTreeMap<&'static str, u64> {
        self.kinds.clone()
    }

    /// Whether a call whose worker died under it may run again, on another worker.
    pub(crate) fn retry_allowed(&self, idempotent: bool, retries_so_far: u32) -> bool {
        self.settings.enabled
            && idempotent
            && self.settings.retry == CrashRetry::Idempotent
            && retries_so_far < self.settings.max_retries
    }
}

/// The GPU device a worker runs on, from `CUDA_VISIBLE_DEVICES` / `HIP_VISIBLE_DEVICES` in its
/// environment (`cuda:0`, `rocm:1`); the first listed device when several are.
pub(crate) fn device_of(env: &BTreeMap<String, String>) -> Option<String> {
    [
        ("CUDA_VISIBLE_DEVICES", "cuda"),
        ("HIP_VISIBLE_DEVICES", "rocm"),
    ]
    .iter()
    .find_map(|(var, kind)| {
        let first = env.get(*var)?.split(',').next()?.trim().to_owned();
        (!first.is_empty() && first != "-1").then(|| format!("{kind}:{first}"))
    })
}

#[cfg(test)]
#[path = "crash_barrier_tests.rs"]
mod tests;
