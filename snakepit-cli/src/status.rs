//! `snakepit status --admin ADDR`: a running host's `/status`, printed as a table.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::CliError;

/// Options of `snakepit status`.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The admin address of a running `snakepit serve` (as it printed: 127.0.0.1:PORT).
    #[arg(long, value_name = "ADDR")]
    admin: SocketAddr,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(a: StatusArgs) -> Result<(), CliError> {
    let body = tokio::time::timeout(Duration::from_secs(10), get(a.admin, "/status"))
        .await
        .map_err(|_| CliError::infra(format!("no answer from {} within 10 s", a.admin)))??;
    let status: Value = serde_json::from_str(&body).map_err(|e| {
        CliError::infra(format!(
            "{} did not answer /status with JSON ({e}): {body}",
            a.admin
        ))
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
    } else {
        print!("{}", table(&status));
    }
    Ok(())
}

/// GETs `path` over HTTP/1.1 and returns the body of a 200 answer.
async fn get(addr: SocketAddr, path: &str) -> Result<String, CliError> {
    let unreachable = |e: std::io::Error| {
        CliError::infra(format!(
            "cannot reach the admin endpoint at {addr} ({e}); is `snakepit serve --admin {addr}` running?"
        ))
    };
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(unreachable)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(unreachable)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(unreachable)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| CliError::infra(format!("{addr} sent no HTTP answer to GET {path}")))?;
    let status_line = head.lines().next().unwrap_or("");
    if !status_line.contains(" 200 ") {
        return Err(CliError::infra(format!(
            "GET {path} from {addr}: {status_line}: {body}"
        )));
    }
    Ok(body.to_owned())
}

/// Renders a `/status` document as one table per pool.
pub(crate) fn table(status: &Value) -> String {
    let mut out = String::new();
    let uptime = status["uptime_ms"].as_u64().unwrap_or(0) / 1000;
    let healthy = if status["healthy"].as_bool() == Some(true) {
        "healthy"
    } else {
        "unhealthy"
    };
    out.push_str(&format!("host: {healthy}, up {uptime} s\n"));
    for pool in status["pools"].as_array().into_iter().flatten() {
        let workers = pool["workers"].as_array().cloned().unwrap_or_default();
        out.push_str(&format!(
            "\npool {}: {} of {} workers, queue {}, sessions {}, requests {}, errors {}\n",
            pool["name"].as_str().unwrap_or("?"),
            workers.len(),
            pool["size"],
            pool["queue_depth"],
            pool["sessions"],
            pool["stats"]["requests"],
            pool["stats"]["errors"],
        ));
        out.push_str(&format!(
            "  {:<28} {:>8} {:<6} {:>8} {:>9} {:>9}\n",
            "WORKER", "PID", "STATE", "SERVED", "UPTIME_S", "RSS_MB"
        ));
        for w in &workers {
            let rss = w["rss_bytes"].as_u64().map_or_else(
                || "-".to_owned(),
                |b| format!("{:.1}", b as f64 / 1_048_576.0),
            );
            out.push_str(&format!(
                "  {:<28} {:>8} {:<6} {:>8} {:>9} {:>9}\n",
                w["id"].as_str().unwrap_or("?"),
                w["pid"],
                w["state"].as_str().unwrap_or("?"),
                w["requests_served"],
                w["uptime_ms"].as_u64().unwrap_or(0) / 1000,
                rss
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_document_becomes_a_table_per_pool() {
        let doc = serde_json::json!({
            "uptime_ms": 12_000, "healthy": true,
            "pools": [{"name": "default", "size": 2, "queue_depth": 0, "sessions": 1,
                       "stats": {"requests": 5, "errors": 1},
                       "workers": [{"id": "default_worker_1", "pid": 42, "state": "idle",
                                    "requests_served": 4, "uptime_ms": 11_000, "rss_bytes": 31_457_280}]}]
        });
        let t = table(&doc);
        assert!(t.starts_with("host: healthy, up 12 s\n"), "{t}");
        assert!(
            t.contains("pool default: 1 of 2 workers, queue 0, sessions 1, requests 5, errors 1"),
            "{t}"
        );
        let row = t
            .lines()
            .find(|l| l.contains("default_worker_1"))
            .unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["default_worker_1", "42", "idle", "4", "11", "30.0"]);
    }
}
