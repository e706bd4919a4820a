//! How a worker process ended ([`ExitKind`]) and what the host had sent it ([`HostSignal`]).

use std::fmt;

use nix::sys::signal::Signal;

/// Why the host itself signalled a worker process, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum HostSignal {
    /// The host sent nothing: the process ended on its own or someone else killed it.
    #[default]
    None = 0,
    /// The host stopped the worker (shutdown, recycling): SIGTERM, grace, SIGKILL.
    Stop = 1,
    /// The host killed the worker at once (a timed-out call, an explicit kill).
    Kill = 2,
    /// The host killed the worker because it missed its heartbeats.
    HeartbeatLost = 3,
}

impl HostSignal {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Stop,
            2 => Self::Kill,
            3 => Self::HeartbeatLost,
            _ => Self::None,
        }
    }
}

/// How a process ended: by itself with a code, by a signal, or in a way nobody could observe.
///
/// `Display` gives the readable form used in logs and errors: `exit status 1`,
/// `killed by signal 9 (SIGKILL)`, or the reason of an unknown end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitKind {
    /// The process exited by itself (`exit(code)`, `os._exit(code)`, returning from main).
    Exited {
        /// Its exit code.
        code: i32,
    },
    /// A signal ended the process.
    Signalled {
        /// The signal's number; a raw number because a real-time signal has no `nix` name.
        signal: i32,
    },
    /// Nobody could observe how it ended (its zygote was gone, `wait` failed).
    Unknown {
        /// Why the end is unknown, in words (`exited (status unknown: its zygote was gone)`).
        reason: String,
    },
}

impl ExitKind {
    /// Returns an unknown end with `reason`.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self::Unknown {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited { code } => write!(f, "exit status {code}"),
            Self::Signalled { signal } => match Signal::try_from(*signal) {
                Ok(name) => write!(f, "killed by signal {signal} ({name})"),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
            Self::Unknown { reason } => f.write_str(reason),
        }
    }
}

impl From<std::process::ExitStatus> for ExitKind {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Exited { code },
            (None, Some(signal)) => Self::Signalled { signal },
            // `wait` reports only ended processes, so this is not reached; keep its words.
            (None, None) => Self::unknown(status.to_string()),
        }
    }
}

/// How a worker process ended, with what the host had sent it before.
///
/// `host_signal` sits beside the [`ExitKind`] rather than inside each variant because it is a
/// separate fact, recorded by the host when it signals and stamped on whatever end follows:
/// every combination is possible (a host SIGTERM answered by `exit status 0`, a heartbeat
/// SIGKILL, or an unknown end after a stop), and `match exit.kind` stays about the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// How the process ended.
    pub kind: ExitKind,
    /// What the host had sent the process before it ended (the first reason wins).
    pub host_signal: HostSignal,
}

impl ExitInfo {
    /// Returns an end of `kind` the host had sent nothing before.
    pub fn new(kind: ExitKind) -> Self {
        Self {
            kind,
            host_signal: HostSignal::None,
        }
    }

    pub(crate) fn unknown(reason: impl Into<String>) -> Self {
        Self::new(ExitKind::unknown(reason))
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn each_end_reads_as_before() {
        assert_eq!(ExitKind::Exited { code: 1 }.to_string(), "exit status 1");
        assert_eq!(
            ExitKind::Signalled { signal: 9 }.to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        // A real-time signal has no name.
        assert_eq!(
            ExitKind::Signalled { signal: 40 }.to_string(),
            "killed by signal 40"
        );
        assert_eq!(
            ExitKind::unknown("exited (status unknown: its zygote was gone)").to_string(),
            "exited (status unknown: its zygote was gone)"
        );
        let info = ExitInfo {
            kind: ExitKind::Signalled { signal: 15 },
            host_signal: HostSignal::Stop,
        };
        assert_eq!(info.to_string(), "killed by signal 15 (SIGTERM)");
    }

    #[test]
    fn a_wait_status_becomes_its_kind() {
        // Raw wait statuses: the code in the second byte, or the signal in the low bits.
        let exited = std::process::ExitStatus::from_raw(3 << 8);
        assert_eq!(ExitKind::from(exited), ExitKind::Exited { code: 3 });
        let killed = std::process::ExitStatus::from_raw(11);
        assert_eq!(ExitKind::from(killed), ExitKind::Signalled { signal: 11 });
        assert_eq!(
            ExitInfo::new(ExitKind::from(killed)).host_signal,
            HostSignal::None
        );
    }
}
