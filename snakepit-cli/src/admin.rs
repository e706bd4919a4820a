//! The admin endpoint of `snakepit serve`, on loopback only: `/metrics` (Prometheus text),
//! `/health` (200 when every pool has its workers, 503 with the reason otherwise), `/status`
//! (JSON), and `POST /execute` (a tool call, only with the `SNAKEPIT_ADMIN_TOKEN` bearer token).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use snakepit_core::CallOptions;
use snakepit_pool::PoolSet;
use snakepit_telemetry::metrics::{PoolGauges, PrometheusMetrics, WorkerGauges};

use crate::CliError;

/// Environment variable holding the bearer token that `POST /execute` requires.
pub(crate) const ADMIN_TOKEN_ENV: &str = "SNAKEPIT_ADMIN_TOKEN";

/// What the admin handlers read.
pub(crate) struct AdminState {
    pub(crate) pools: Arc<PoolSet>,
    pub(crate) metrics: Arc<PrometheusMetrics>,
    pub(crate) started: Instant,
    pub(crate) stopping: AtomicBool,
    pub(crate) execute_token: Option<String>,
}

/// Binds the admin listener; refuses addresses that are not loopback.
pub(crate) async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, CliError> {
    if !addr.ip().is_loopback() {
        return Err(CliError::usage(format!(
            "--admin {addr} is not a loopback address; the admin endpoint serves on loopback only (use 127.0.0.1:PORT or [::1]:PORT)"
        )));
    }
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::infra(format!(
            "cannot listen on {addr} for the admin endpoint: {e}"
        ))
    })
}

/// The admin routes.
pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/execute", post(execute))
        .with_state(state)
}

async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    let mut pools = Vec::new();
    let mut workers = Vec::new();
    for name in s.pools.names() {
        let Ok(pool) = s.pools.pool(name) else {
            continue;
        };
        let stats = pool.stats();
        pools.push((
            name.to_owned(),
            PoolGauges {
                size: pool.config().pool_size,
                workers: stats.workers,
                available: stats.available,
                busy: stats.busy,
                queue_depth: stats.queued,
            },
        ));
        for w in pool.list_workers() {
            workers.push(WorkerGauges {
                pool: name.to_owned(),
                worker: w.id.to_string(),
                rss_bytes: w.rss_bytes,
                breaker: w.circuit_state,
            });
        }
    }
    s.metrics.refresh(&pools, &workers);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

/// Returns why the host is not healthy, or `None` when every pool has all its workers.
pub(crate) fn unhealthy_reason(s: &AdminState) -> Option<String> {
    if s.stopping.load(Ordering::SeqCst) {
        return Some("shutting down".into());
    }
    let mut reasons = Vec::new();
    for name in s.pools.names() {
        let Ok(pool) = s.pools.pool(name) else {
            continue;
        };
        let (have, want) = (pool.stats().workers, pool.config().pool_size);
        if have < want {
            reasons.push(format!("pool '{name}' has {have} of {want} workers ready"));
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

async fn health(State(s): State<Arc<AdminState>>) -> Response {
    match unhealthy_reason(&s) {
        None => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        )
            .into_response(),
    }
}

/// The `/status` document.
pub(crate) fn status_json(s: &AdminState) -> Value {
    let pools: Vec<Value> = s
        .pools
        .names()
        .filter_map(|name| {
            let pool = s.pools.pool(name).ok()?;
            let stats = pool.stats();
            let workers: Vec<Value> = pool
                .list_workers()
                .into_iter()
                .map(|w| {
                    json!({
                        "id": w.id.as_str(),
                        "pid": w.pid,
                        "state": w.state,
                        "requests_served": w.requests,
                        "uptime_ms": w.uptime.as_millis() as u64,
                        "rss_bytes": w.rss_bytes,
                        "load": w.load,
                        "capacity": w.capacity,
                        "circuit_state": w.circuit_state,
                    })
                })
                .collect();
            Some(json!({
                "name": name,
                "size": pool.config().pool_size,
                "queue_depth": stats.queued,
                "sessions": pool.session_count(),
                "stats": stats,
                "workers": workers,
            }))
        })
        .collect();
    json!({
        "uptime_ms": s.started.elapsed().as_millis() as u64,
        "healthy": unhealthy_reason(s).is_none(),
        "pools": pools,
    })
}

async fn status(State(s): State<Arc<AdminState>>) -> Json<Value> {
    Json(status_json(&s))
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({"error": message.into()}))).into_response()
}

async fn execute(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(expected) = &s.execute_token else {
        return error(
            StatusCode::FORBIDDEN,
            format!("POST /execute is off; start serve with {ADMIN_TOKEN_ENV} set and send it as 'Authorization: Bearer <token>'"),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_secret(given, expected) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let Some(tool) = body.get("tool").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            r#"the body needs "tool" (a string), and may have "args" (an object) and "pool" (a name)"#,
        );
    };
    let pool = body
        .get("pool")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let args = body.get("args").cloned().unwrap_or_else(|| json!({}));
    match s
        .pools
        .execute(pool, tool, args, CallOptions::default())
        .await
    {
        Ok(payload) => Json(json!({"result": payload.json})).into_response(),
        Err(e) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} ({})", e, e.kind().as_str()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[tokio::test]
    async fn a_non_loopback_admin_address_is_refused() {
        let err = bind("0.0.0.0:0".parse().unwrap_or_else(|_| unreachable!()))
            .await
            .err()
            .map(|e| e.message);
        assert!(err.is_some_and(|m| m.contains("loopback only")));
    }
}
