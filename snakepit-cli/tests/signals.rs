//! Signals and host death, end to end with real workers: SIGINT/SIGTERM to `snakepit exec`
//! mid-stream, a second signal, a SIGKILLed host, and what the next start sweeps up.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::*;

/// Starts a streaming `exec` on a one-worker fault pool and waits for its first chunk.
fn streaming_host(dir: &std::path::Path, grace_ms: u64) -> (Host, u32, String) {
    let config = fault_config(dir, 1, grace_ms);
    let mut host = Host::exec(&[
        "ticks",
        "--stream",
        "--args",
        r#"{"count": 100000, "delay_ms": 20}"#,
        "--config",
        config.to_str().unwrap(),
    ]);
    let first = host.lines.next().expect("a first chunk").unwrap();
    assert!(first.contains("tick"), "unexpected first line {first}");
    let workers = await_workers(&host, 1, Duration::from_secs(30));
    assert_eq!(workers.len(), 1, "the host has one worker");
    let run_id = run_id_of(workers[0]);
    assert_eq!(run_dirs(&run_id).len(), 1, "the run directory exists");
    (host, workers[0], run_id)
}

fn signal_mid_stream_exits_with(signal: Signal, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_millis(1500);
    let (mut host, worker, run_id) = streaming_host(dir.path(), grace.as_millis() as u64);
    let sent = Instant::now();
    host.signal(signal);
    let status = host
        .wait_exit(Duration::from_secs(60))
        .expect("the host exits after the signal");
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(code), "{signal} gives exit code {code}");
    assert!(!alive(worker), "the worker outlived the host");
    assert!(run_dirs(&run_id).is_empty(), "the run directory was left");
    // The grace plus generous slack for a loaded machine (SIGKILL follows the grace anyway).
    assert!(
        took < grace + Duration::from_secs(20),
        "stopping took {took:?} with a grace of {grace:?}"
    );
    eprintln!("{signal}: exited {code} after {took:?} (grace {grace:?})");
}

#[test]
fn sigint_mid_stream_stops_gracefully_and_exits_130() {
    signal_mid_stream_exits_with(Signal::SIGINT, 130);
}

#[test]
fn sigterm_mid_stream_stops_gracefully_and_exits_143() {
    signal_mid_stream_exits_with(Signal::SIGTERM, 143);
}

#[test]
fn second_signal_kills_the_workers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A grace so long that only the second signal can explain a quick exit.
    let grace = Duration::from_secs(120);
    let (mut host, worker, run_id) = streaming_host(dir.path(), grace.as_millis() as u64);
    host.signal(Signal::SIGINT);
    // The first signal is being handled once the worker got its SIGTERM; the stream keeps
    // going through the grace period, so the host is still up.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        host.child.try_wait().unwrap().is_none(),
        "the host exited before the grace"
    );
    let sent = Instant::now();
    host.signal(Signal::SIGINT);
    let status = host
        .wait_exit(Duration::from_secs(60))
        .expect("the host exits after the second signal");
    assert_eq!(status.code(), Some(130));
    assert!(
        sent.elapsed() < grace / 2,
        "the second signal did not cut the grace short ({:?})",
        sent.elapsed()
    );
    assert!(!alive(worker), "the worker survived the second signal");
    assert!(run_dirs(&run_id).is_empty(), "the run directory was left");
}

#[test]
fn workers_and_their_children_die_with_a_sigkilled_host() {
    let dir = tempfile::tempdir().unwrap();
    let config = fault_config(dir.path(), 4, 2000);
    // One call holds a worker with a `sleep 1000` child; four workers in all.
    let mut host = Host::exec(&["hold_sleeper", "--config", config.to_str().unwrap()]);
    let workers = await_workers(&host, 4, Duration::from_secs(60));
    assert_eq!(workers.len(), 4, "four workers started");
    let sleeper = time_until(Duration::from_secs(60), || {
        members_of_groups(&workers)
            .iter()
            .any(|p| cmdline(*p).starts_with("sleep 1000"))
    });
    assert!(sleeper.is_some(), "the tool's sleep 1000 never started");
    let run_id = run_id_of(workers[0]);

    let killed = Instant::now();
    host.signal(Signal::SIGKILL);
    let workers_gone = time_until(Duration::from_secs(10), || {
        workers.iter().all(|w| !alive(*w))
    });
    let groups_gone = time_until(Duration::from_secs(10), || {
        members_of_groups(&workers).is_empty()
    })
    .map(|_| killed.elapsed());
    host.wait_exit(Duration::from_secs(10)).expect("host dies");
    eprintln!(
        "after host SIGKILL: all 4 workers gone in {workers_gone:?}, every process of their groups in {groups_gone:?}"
    );
    assert!(workers_gone.is_some(), "workers outlived the host");
    assert!(
        groups_gone.is_some(),
        "processes of the workers' groups survived: {:?}",
        members_of_groups(&workers)
    );
    // The host died without cleaning up: its run directory is still there for the next start.
    assert_eq!(run_dirs(&run_id).len(), 1);
    let _ = std::fs::remove_dir_all(&run_dirs(&run_id)[0]);
}

#[test]
fn next_start_sweeps_a_sigkilled_hosts_directory_and_detached_children() {
    let dir = tempfile::tempdir().unwrap();
    let config = fault_config(dir.path(), 1, 2000);
    let mut host = Host::exec(&[
        "hold_sleeper",
        "--args",
        r#"{"detach": true}"#,
        "--config",
        config.to_str().unwrap(),
    ]);
    let workers = await_workers(&host, 1, Duration::from_secs(60));
    assert_eq!(workers.len(), 1);
    let run_id = run_id_of(workers[0]);
    let mut detached = Vec::new();
    let found = time_until(Duration::from_secs(60), || {
        detached = children_of(workers[0])
            .into_iter()
            .filter(|p| cmdline(*p).starts_with("sleep 1000"))
            .collect();
        !detached.is_empty()
    });
    assert!(found.is_some(), "the detached sleeper never started");
    host.signal(Signal::SIGKILL);
    host.wait_exit(Duration::from_secs(10)).expect("host dies");
    assert!(
        time_until(Duration::from_secs(10), || !alive(workers[0])).is_some(),
        "the worker outlived its host"
    );
    // Left behind: the run directory, and a child that escaped the group in its own session.
    assert_eq!(run_dirs(&run_id).len(), 1, "run directory of the dead host");
    assert!(
        alive(detached[0]),
        "the detached child is the sweep's to reap"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_snakepit"))
        .args(["exec", "whoami", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        run_dirs(&run_id).is_empty(),
        "the next start left the dead host's run directory"
    );
    assert!(
        time_until(Duration::from_secs(5), || !alive(detached[0])).is_some(),
        "the sweep left the dead run's detached child alive"
    );
}
