//! Composing tower layers with a pool, both ways:
//!
//! * around each worker, with `Pool::builder(..).layer(..)`: here a layer that counts the
//!   calls each worker serves (unary and streaming), next to the configured breaker/timeouts;
//! * around the whole pool, since `Pool` is a `tower::Service<ToolCall>`: here a concurrency
//!   limit, a rate limit and load shedding from `tower::ServiceBuilder`.
//!
//! Run it with `cargo run -p snakepit-pool --example layers` (the showcase adapter needs the
//! project's Python environment: `cargo xtask bootstrap`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use snakepit_core::config::PoolConfig;
use snakepit_core::{CallOptions, Error, ToolCall};
use snakepit_pool::{CallMode, Pool, WorkerCall};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// Counts the calls that pass through it, by mode.
#[derive(Clone, Default)]
struct CountCalls {
    unary: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
}

impl<S> Layer<S> for CountCalls {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counts: self.clone(),
        }
    }
}

/// A worker's service with a [`CountCalls`] around it.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    counts: CountCalls,
}

impl<S: Service<WorkerCall>> Service<WorkerCall> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: WorkerCall) -> S::Future {
        let counter = match req.mode {
            CallMode::Unary => &self.counts.unary,
            CallMode::Stream => &self.counts.streams,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.inner.call(req)
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let counts = CountCalls::default();
    let pool = Pool::builder(PoolConfig::showcase(2))
        .layer(counts.clone())
        .start()
        .await?;
    pool.await_ready(Duration::from_secs(30)).await?;

    // A stream goes through the worker's layers like any call.
    let mut chunks = pool
        .execute_stream(
            "stream_progress",
            json!({"steps": 3}),
            CallOptions::default(),
        )
        .await?;
    while let Some(chunk) = chunks.next().await {
        println!("chunk: {:?}", chunk?.json);
    }

    // The whole pool under tower middleware: at most 4 calls at once, 100 per second, and
    // calls beyond that are refused at once instead of piling up.
    let mut service = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(4)
        .rate_limit(100, Duration::from_secs(1))
        .service(pool.service());
    for i in 0..5 {
        let call = ToolCall::new("add", json!({"a": i, "b": 1}))?;
        let sum = service
            .ready()
            .await
            .map_err(Error::from_box)?
            .call(call)
            .await
            .map_err(Error::from_box)?;
        println!("{i} + 1 = {}", sum.json);
    }
    println!(
        "worker layers saw {} unary calls and {} streams",
        counts.unary.load(Ordering::Relaxed),
        counts.streams.load(Ordering::Relaxed)
    );
    pool.shutdown().await;
    Ok(())
}
