//! The host's end of a zygote's control socket: authenticate, ask for forks, hear of exits.
//!
//! Newline-delimited JSON on a Unix socket in the run's private directory (the protocol is
//! described in `snakepit_bridge/zygote.py`). One reader task owns the read half and routes
//! each line: a reply to the fork request with its id, or an exit report to the child's watcher.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::process::ExitKind;

/// What the zygote answered to a fork request.
#[derive(Debug)]
pub(crate) struct ForkReply {
    /// The child's pid.
    pub(crate) pid: u32,
    /// The child's start time from `/proc/<pid>/stat`, read by the zygote before it could reap it.
    pub(crate) start_time: u64,
    /// Receives the child's exit status once the zygote has reaped it.
    pub(crate) exit_status: oneshot::Receiver<ExitKind>,
}

#[derive(Debug, Deserialize)]
struct Line {
    id: Option<u64>,
    ok: Option<bool>,
    pid: Option<u32>,
    start_time: Option<u64>,
    error: Option<String>,
    exit: Option<u32>,
    status: Option<String>,
    code: Option<i32>,
    signal: Option<i32>,
}

type Reply = Result<ForkReply, String>;

#[derive(Debug, Default)]
struct Routes {
    replies: HashMap<u64, oneshot::Sender<Reply>>,
    exits: HashMap<u32, oneshot::Sender<ExitKind>>,
    closed: bool,
}

/// An authenticated connection to one zygote.
#[derive(Debug)]
pub(crate) struct ControlConnection {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    routes: Arc<Mutex<Routes>>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl ControlConnection {
    /// Connects to the socket at `path` and authenticates with the run `token`.
    pub(crate) async fn connect(path: &Path, token: &str) -> Result<Self, String> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            format!(
                "cannot connect to the control socket {}: {e}",
                path.display()
            )
        })?;
        let (read, mut write) = stream.into_split();
        let hello = json!({"op": "hello", "token": token}).to_string() + "\n";
        write
            .write_all(hello.as_bytes())
            .await
            .map_err(|e| format!("cannot send the hello: {e}"))?;
        let mut lines = BufReader::new(read).lines();
        let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| "no answer to the hello within 10 s".to_owned())?
            .map_err(|e| format!("cannot read the hello answer: {e}"))?
            .ok_or_else(|| "the zygote closed the connection at the hello".to_owned())?;
        let line: Line = serde_json::from_str(&answer)
            .map_err(|e| format!("the hello answer is not JSON ({e}): {answer}"))?;
        if line.ok != Some(true) {
            return Err(format!(
                "the zygote refused the hello: {}",
                line.error.unwrap_or_default()
            ));
        }
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader = tokio::spawn(route_lines(lines, routes.clone()));
        Ok(Self {
            writer: tokio::sync::Mutex::new(write),
            routes,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    /// Whether the zygote still holds its end of the connection.
    pub(crate) fn is_open(&self) -> bool {
        self.routes.lock().map(|r| !r.closed).unwrap_or(false)
    }

    /// Asks for one child running the server with `args` and `env`; returns once it is forked.
    pub(crate) async fn fork(
        &self,
        args: &[String],
        env: &HashMap<String, String>,
        timeout: Duration,
    ) -> Result<ForkReply, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = self
                .routes
                .lock()
                .map_err(|_| "control routes lock poisoned".to_owned())?;
            if routes.closed {
                return Err("the zygote's control connection is closed".into());
            }
            routes.replies.insert(id, tx);
        }
        let request = json!({"op": "fork", "id": id, "args": args, "env": env}).to_string() + "\n";
        let sent = self.writer.lock().await.write_all(request.as_bytes()).await;
        if let Err(e) = sent {
            self.forget(id);
            return Err(format!("cannot send the fork request: {e}"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err("the zygote closed its control connection".into()),
            Err(_) => {
                self.forget(id);
                Err(format!("no fork reply within {} ms", timeout.as_millis()))
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.replies.remove(&id);
        }
    }
}

impl Drop for ControlConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads a zygote's exit report (`{"exit": P, "status": "exit status 0", "code": 0}`, or
/// `"signal": 9` for a killed child) into its kind; the text stands only for an end it cannot type.
fn exit_kind(status: Option<String>, code: Option<i32>, signal: Option<i32>) -> ExitKind {
    let status = status.unwrap_or_else(|| "exited".into());
    match (code, signal) {
        (Some(code), None) => ExitKind::Exited { code },
        (None, Some(signal)) => ExitKind::Signalled { signal },
        (Some(code), Some(signal)) => ExitKind::unknown(format!(
            "{status} (the zygote reported both exit code {code} and signal {signal})"
        )),
        (None, None) => ExitKind::unknown(format!(
            "{status} (the zygote reported neither an exit code nor a signal)"
        )),
    }
}

async fn route_lines(
    mut lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    routes: Arc<Mutex<Routes>>,
) {
    while let Ok(Some(text)) = lines.next_line().await {
        let Ok(line) = serde_json::from_str::<Line>(&text) else {
            tracing::warn!(target: "snakepit::zygote", line = %text, "unreadable control message");
            continue;
        };
        let Ok(mut r) = routes.lock() else { return };
        if let Some(pid) = line.exit {
            if let Some(tx) = r.exits.remove(&pid) {
                let _ = tx.send(exit_kind(line.status, line.code, line.signal));
            }
            continue;
        }
        let Some(tx) = line.id.and_then(|id| r.replies.remove(&id)) else {
            continue;
        };
        let reply = match (line.ok, line.pid, line.start_time) {
            (Some(true), Some(pid), Some(start_time)) => {
                // Registered before the caller hears of the child, so no exit report is missed.
                let (exit_tx, exit_status) = oneshot::channel();
                r.exits.insert(pid, exit_tx);
                Ok(ForkReply {
                    pid,
                    start_time,
                    exit_status,
                })
            }
            _ => Err(line
                .error
                .unwrap_or_else(|| format!("malformed fork reply: {text}"))),
        };
        let _ = tx.send(reply);
    }
    if let Ok(mut r) = routes.lock() {
        r.closed = true;
        r.replies.clear();
        r.exits.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(report: &str) -> ExitKind {
        let line: Line = serde_json::from_str(report).expect("a JSON exit report");
        exit_kind(line.status, line.code, line.signal)
    }

    #[test]
    fn an_exit_report_becomes_its_typed_kind() {
        let exited = parse(r#"{"exit": 7, "status": "exit status 3", "code": 3}"#);
        assert_eq!(exited, ExitKind::Exited { code: 3 });
        assert_eq!(exited.to_string(), "exit status 3");
        let killed = parse(r#"{"exit": 7, "status": "killed by signal 9 (SIGKILL)", "signal": 9}"#);
        assert_eq!(killed, ExitKind::Signalled { signal: 9 });
        assert_eq!(killed.to_string(), "killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn a_report_that_cannot_be_typed_is_unknown_and_keeps_its_text() {
        assert_eq!(
            parse(r#"{"exit": 7, "status": "exit status 0"}"#),
            ExitKind::unknown(
                "exit status 0 (the zygote reported neither an exit code nor a signal)"
            )
        );
        assert_eq!(
            parse(r#"{"exit": 7, "code": 1, "signal": 9}"#),
            ExitKind::unknown("exited (the zygote reported both exit code 1 and signal 9)")
        );
    }
}
