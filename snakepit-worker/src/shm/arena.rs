//! The host's arena of one worker: segments grown on demand, regions handed to one call each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::alloc::{align_up, RangeAllocator};
use super::segment::Segment;

/// Smallest segment the arena creates (requests larger than this get a segment of their own size).
const MIN_SEGMENT: usize = 64 << 20;
/// Segments are sized in steps of this (huge-page friendly).
const SEGMENT_STEP: usize = 2 << 20;

#[derive(Debug)]
struct Slot {
    id: String,
    segment: Arc<Segment>,
    ranges: RangeAllocator,
    regions: usize,
}

#[derive(Debug, Default)]
struct State {
    slots: Vec<Slot>,
    live: usize,
}

/// The shared memory the host writes a worker's array arguments into.
#[derive(Debug)]
pub(crate) struct Arena {
    prefix: String,
    next_segment: AtomicU64,
    state: Mutex<State>,
}

/// A range of the arena owned by one call; dropping it returns the range.
#[derive(Debug)]
pub(crate) struct Region {
    arena: Arc<Arena>,
    pub(crate) segment_id: String,
    pub(crate) segment: Arc<Segment>,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

impl AsRef<[u8]> for Region {
    fn as_ref(&self) -> &[u8] {
        self.segment.slice(self.offset, self.len)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.arena.release(&self.segment_id, self.offset, self.len);
    }
}

impl Arena {
    /// An empty arena whose segments are named `<prefix>-<n>` (unique per worker and run).
    pub(crate) fn new(prefix: String) -> Arc<Self> {
        Arc::new(Self {
            prefix,
            next_segment: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        })
    }

    /// Whether `segment_id` names one of this arena's segments.
    pub(crate) fn owns(&self, segment_id: &str) -> bool {
        segment_id
            .strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// Hands out `len` bytes, growing the arena with a new segment when nothing free fits.
    pub(crate) fn allocate(self: &Arc<Self>, len: usize) -> std::io::Result<Region> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("arena lock poisoned"))?;
        let found = state
            .slots
            .iter_mut()
            .find_map(|slot| slot.ranges.allocate(len).map(|off| (slot, off)));
        let (slot, offset) = match found {
            Some(hit) => hit,
            None => {
                let size = align_up(len.max(MIN_SEGMENT))
                    .and_then(|n| n.checked_add(SEGMENT_STEP - 1))
                    .map(|n| n / SEGMENT_STEP * SEGMENT_STEP)
                    .ok_or_else(|| std::io::Error::other("array too large for shared memory"))?;
                let n = self.next_segment.fetch_add(1, Ordering::Relaxed);
                let id = format!("{}-{n}", self.prefix);
                let segment = Arc::new(Segment::create(&id, size)?);
                tracing::debug!(target: "snakepit::zero_copy", segment = %id, bytes = size, "arena grew");
                state.slots.push(Slot {
                    id,
                    segment,
                    ranges: RangeAllocator::new(size),
                    regions: 0,
                });
                let slot = state
                    .slots
                    .last_mut()
                    .ok_or_else(|| std::io::Error::other("arena slot vanished"))?;
                let off = slot
                    .ranges
                    .allocate(len)
                    .ok_or_else(|| std::io::Error::other("fresh segment cannot hold the array"))?;
                (slot, off)
            }
        };
        slot.regions += 1;
        let region = Region {
            arena: self.clone(),
            segment_id: slot.id.clone(),
            segment: slot.segment.clone(),
            offset,
            len,
        };
        state.live += 1;
        Ok(region)
    }

    fn release(&self, segment_id: &str, offset: usize, len: usize) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let Some(i) = state.slots.iter().position(|s| s.id == segment_id) else {
            return;
        };
        state.live = state.live.saturating_sub(1);
        let slot = &mut state.slots[i];
        slot.ranges.release(offset, len);
        slot.regions = slot.regions.saturating_sub(1);
        // Keep the largest segment mapped for the next call (its pages are warm); drop other
        // segments once they are empty, so one huge call does not pin its memory forever.
        if slot.regions == 0 && state.slots.len() > 1 {
            let largest = state
                .slots
                .iter()
                .enumerate()
                .max_by_key(|(_, s)| s.segment.len())
                .map(|(j, _)| j);
            if largest != Some(i) {
                state.slots.remove(i);
            }
        }
    }

    /// Regions currently handed out (for leak checks).
    pub(crate) fn live_regions(&self) -> usize {
        self.state.lock().map(|s| s.live).unwrap_or(0)
    }

    /// Bytes of the arena handed out to calls.
    pub(crate) fn used_bytes(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.slots.iter().map(|x| x.ranges.used()).sum())
            .unwrap_or(0)
    }

    /// Bytes of shared memory the arena holds mapped.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.slots.iter().map(|x| x.segment.len()).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_return_to_the_arena_and_big_ones_get_their_own_segment() {
        let arena = Arena::new(format!("snakepit-test-arena-{}", std::process::id()));
        let a = arena.allocate(1000).unwrap();
        let b = arena.allocate(1000).unwrap();
        assert_eq!(a.segment_id, b.segment_id);
        assert_ne!(a.offset, b.offset);
        a.segment.write(a.offset, b"abc").unwrap();
        assert_eq!(&a.as_ref()[..3], b"abc");
        assert!(arena.owns(&a.segment_id));
        assert!(!arena.owns("someone-else-0"));
        let big = arena.allocate(MIN_SEGMENT + 1).unwrap();
        assert_ne!(big.segment_id, a.segment_id);
        assert_eq!(arena.live_regions(), 3);
        drop((a, b));
        // The small segment emptied and is not the largest: it is unmapped.
        assert_eq!(arena.live_regions(), 1);
        assert_eq!(arena.mapped_bytes(), big.segment.len());
        drop(big);
        assert_eq!(arena.live_regions(), 0);
        assert!(arena.mapped_bytes() > 0);
    }
}
