//! The worker's segments as the host sees them: result regions mapped and released in place.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::segment::Segment;

/// Bytes in front of every worker region: `[magic u32, state u32, ...]`.
pub(crate) const HEADER: usize = 64;
/// The state word the host sets when it no longer uses a region; the worker then reuses it.
pub(crate) const RELEASED: u32 = 2;
/// How many of the worker's segments stay mapped between calls.
const MAPPED_SEGMENTS: usize = 4;

/// The host's view of one worker's result segments.
#[derive(Debug)]
pub(crate) struct PeerSegments {
    pid: u32,
    /// Mapped segments by id, most recently used last (a few stay mapped: their pages are warm).
    maps: Mutex<Vec<(String, Arc<Segment>)>>,
    held: Arc<AtomicUsize>,
}

/// A result region the host holds; dropping it marks the region released for the worker.
struct PeerRegion {
    segment: Arc<Segment>,
    offset: usize,
    len: usize,
    held: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for PeerRegion {
    fn as_ref(&self) -> &[u8] {
        self.segment.slice(self.offset, self.len)
    }
}

impl Drop for PeerRegion {
    fn drop(&mut self) {
        self.segment.store_flag(self.offset - HEADER + 4, RELEASED);
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PeerSegments {
    /// The segments of the worker process `pid`.
    pub(crate) fn new(pid: u32) -> Self {
        Self {
            pid,
            maps: Mutex::new(Vec::new()),
            held: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Result regions the host still holds (for leak checks).
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Maps (once per segment) and views a result region the worker handed over.
    ///
    /// Only the worker's own memfds (`/proc/<pid>/fd/N`) or its `/dev/shm/snakepit-*` files
    /// are opened, so a handle can never make the host map an arbitrary file.
    pub(crate) fn view(
        &self,
        segment_id: &str,
        path: &str,
        size: usize,
        offset: usize,
        len: usize,
    ) -> Result<Bytes, String> {
        let own_fd = path
            .strip_prefix(&format!("/proc/{}/fd/", self.pid))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let own_shm = path
            .strip_prefix("/dev/shm/snakepit-")
            .is_some_and(|n| !n.contains('/'));
        if !(own_fd || own_shm) {
            return Err(format!(
                "the worker named segment path {path:?}, which is not one of its own"
            ));
        }
        if offset < HEADER
            || !offset.is_multiple_of(64)
            || offset.checked_add(len).is_none_or(|end| end > size)
        {
            return Err(format!(
                "region {offset}+{len} does not fit segment {segment_id} of {size} bytes"
            ));
        }
        let segment = {
            let mut maps = self
                .maps
                .lock()
                .map_err(|_| "segment map lock poisoned".to_owned())?;
            let hit = maps
                .iter()
                .position(|(id, s)| id == segment_id && s.len() >= size);
            let entry = match hit {
                Some(i) => maps.remove(i),
                None => {
                    let s = Segment::open_peer(path, size)
                        .map_err(|e| format!("cannot map worker segment {path}: {e}"))?;
                    maps.retain(|(id, _)| id != segment_id);
                    (segment_id.to_owned(), Arc::new(s))
                }
            };
            let segment = entry.1.clone();
            maps.push(entry);
            if maps.len() > MAPPED_SEGMENTS {
                // Regions still held keep their own reference; only the cache entry goes.
                maps.remove(0);
            }
            segment
        };
        self.held.fetch_add(1, Ordering::Relaxed);
        Ok(Bytes::from_owner(PeerRegion {
            segment,
            offset,
            len,
            held: self.held.clone(),
        }))
    }
}
