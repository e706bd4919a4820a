//! A first-fit allocator of byte ranges inside one segment, with coalescing on free.

/// Every region starts on this boundary (cache line, and enough for any dtype or SIMD load).
pub(crate) const ALIGN: usize = 64;

/// Rounds `n` up to the region alignment.
pub(crate) fn align_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|n| n & !(ALIGN - 1))
}

/// Free ranges of one segment, sorted by offset and never adjacent (they are merged).
#[derive(Debug)]
pub(crate) struct RangeAllocator {
    size: usize,
    free: Vec<(usize, usize)>,
}

impl RangeAllocator {
    /// An allocator over `size` bytes, all free.
    pub(crate) fn new(size: usize) -> Self {
        Self {
            size,
            free: if size > 0 {
                vec![(0, size)]
            } else {
                Vec::new()
            },
        }
    }

    /// Takes `len` bytes (rounded up to [`ALIGN`]); returns the offset, or `None` when no
    /// free range is large enough.
    pub(crate) fn allocate(&mut self, len: usize) -> Option<usize> {
        let len = align_up(len.max(1))?;
        let i = self.free.iter().position(|(_, l)| *l >= len)?;
        let (off, free_len) = self.free[i];
        if free_len == len {
            self.free.remove(i);
        } else {
            self.free[i] = (off + len, free_len - len);
        }
        Some(off)
    }

    /// Returns the range `[off, off + len)` (as allocated) to the free list.
    pub(crate) fn release(&mut self, off: usize, len: usize) {
        let Some(len) = align_up(len.max(1)) else {
            return;
        };
        let i = self.free.partition_point(|(o, _)| *o < off);
        self.free.insert(i, (off, len));
        // Merge with the next range, then with the previous one.
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }

    /// Bytes currently handed out.
    pub(crate) fn used(&self) -> usize {
        self.size - self.free.iter().map(|(_, l)| l).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_aligned_ranges_and_coalesces_on_release() {
        let mut a = RangeAllocator::new(1024);
        let x = a.allocate(10).unwrap();
        let y = a.allocate(100).unwrap();
        let z = a.allocate(64).unwrap();
        assert_eq!((x, y, z), (0, 64, 192));
        assert_eq!(a.used(), 256);
        a.release(y, 100);
        a.release(x, 10);
        // The two freed ranges merged: a 192-byte request fits at the start again.
        assert_eq!(a.allocate(192), Some(0));
        a.release(0, 192);
        a.release(z, 64);
        assert_eq!(a.used(), 0);
        assert_eq!(a.allocate(1024), Some(0));
        assert_eq!(a.allocate(1), None);
    }

    #[test]
    fn oversized_requests_fail_without_overflow() {
        let mut a = RangeAllocator::new(128);
        assert_eq!(a.allocate(usize::MAX), None);
        assert_eq!(a.allocate(129), None);
        assert_eq!(a.allocate(0), Some(0));
    }
}
