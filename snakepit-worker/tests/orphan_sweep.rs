//! The orphan sweep kills leftovers of dead hosts, and nothing it cannot prove is theirs.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command};
use std::time::Duration;

use snakepit_worker::registry::{process_start_time, sweep_orphans};

fn leftover(run_id: &str) -> Child {
    use std::os::unix::process::CommandExt;
    Command::new("python3")
        .args([
            "-c",
            "import time; time.sleep(60)",
            "--snakepit-run-id",
            run_id,
        ])
        .process_group(0)
        .spawn()
        .unwrap()
}

fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn write_run(
    dir: &std::path::Path,
    run_id: &str,
    host_pid: u32,
    host_start: u64,
    workers: &[(u32, u64)],
) {
    let workers: serde_json::Map<String, serde_json::Value> = workers
        .iter()
        .enumerate()
        .map(|(i, (pid, start))| {
            (
                format!("w{i}"),
                serde_json::json!({"worker_id": format!("w{i}"), "pid": pid, "start_time": start}),
            )
        })
        .collect();
    let run = serde_json::json!({"run_id": run_id, "host_pid": host_pid, "host_start_time": host_start, "workers": workers});
    std::fs::write(dir.join(format!("{run_id}.json")), run.to_string()).unwrap();
}

async fn gone(child: &mut Child) -> bool {
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn leftovers_of_a_dead_host_are_killed_and_strangers_spared() {
    let dir = tempfile::tempdir().unwrap();
    let mut orphan = leftover("aaaaaa1");
    let mut stranger = leftover("aaaaaa2");
    let mut live_hosts_worker = leftover("aaaaaa3");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let orphan_start = process_start_time(orphan.id()).unwrap();
    let stranger_start = process_start_time(stranger.id()).unwrap();
    let live_start = process_start_time(live_hosts_worker.id()).unwrap();

    // Dead host: its real worker, plus a pid recorded with the wrong start time (a reused pid).
    write_run(
        dir.path(),
        "aaaaaa1",
        dead_pid(),
        12345,
        &[
            (orphan.id(), orphan_start),
            (stranger.id(), stranger_start + 1),
        ],
    );
    // Live host (this test process): its workers are not orphans.
    let me = std::process::id();
    write_run(
        dir.path(),
        "aaaaaa3",
        me,
        process_start_time(me).unwrap(),
        &[(live_hosts_worker.id(), live_start)],
    );

    let report = sweep_orphans(dir.path()).await;
    assert_eq!(report.killed, vec![orphan.id()]);
    assert_eq!(report.stale_runs, vec!["aaaaaa1".to_string()]);
    assert!(gone(&mut orphan).await, "the orphan survived the sweep");
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "a process with another start time was killed"
    );
    assert!(
        live_hosts_worker.try_wait().unwrap().is_none(),
        "a live host's worker was killed"
    );
    assert!(!dir.path().join("aaaaaa1.json").exists());
    assert!(dir.path().join("aaaaaa3.json").exists());
    for c in [&mut stranger, &mut live_hosts_worker] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}
