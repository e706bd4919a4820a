//! A worker's chunk stream that holds its lease and enforces the stream's overall deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use snakepit_core::{Chunk, ChunkStream, Error};
use tokio::time::{Instant, Sleep};

use crate::pool::{Inner, Lease};
use crate::service::at_call_limit;

pin_project_lite::pin_project! {
    /// Yields the worker's chunks until the final one; past the deadline, one timeout error.
    ///
    /// An error ending the stream counts in the pool's `stats().errors`.
    pub(crate) struct LeasedStream {
        inner: ChunkStream,
        lease: Option<Lease>,
        #[pin]
        deadline: Sleep,
        timeout: Duration,
        tool: String,
        pool: Arc<Inner>,
        done: bool,
    }
}

impl LeasedStream {
    pub(crate) fn new(
        inner: ChunkStream,
        lease: Lease,
        deadline: Instant,
        timeout: Duration,
        tool: String,
        pool: Arc<Inner>,
    ) -> Self {
        Self {
            inner,
            lease: Some(lease),
            deadline: tokio::time::sleep_until(deadline),
            timeout,
            tool,
            pool,
            done: false,
        }
    }
}

impl Stream for LeasedStream {
    type Item = Result<Chunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(item) => {
                let item = item.map(|r| r.map_err(|e| at_call_limit(e, Some(*this.timeout))));
                let end = match &item {
                    None | Some(Err(_)) => true,
                    Some(Ok(chunk)) => chunk.is_final,
                };
                if end {
                    *this.done = true;
                    if matches!(&item, Some(Err(_))) {
                        this.pool.counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    // The worker is free as soon as the stream is complete, not when it is dropped.
                    if let Some(lease) = this.lease.take() {
                        if matches!(&item, Some(Ok(_))) {
                            lease.succeeded();
                        }
                    }
                }
                Poll::Ready(item)
            }
            Poll::Pending => match this.deadline.poll(cx) {
                Poll::Ready(()) => {
                    *this.done = true;
                    if let Some(lease) = this.lease.take() {
                        this.pool.counters.errors.fetch_add(1, Ordering::Relaxed);
                        lease.retire_after_timeout();
                        let op = format!("stream '{}' on worker {}", this.tool, lease.id);
                        return Poll::Ready(Some(Err(Error::timeout(op, *this.timeout))));
                    }
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
