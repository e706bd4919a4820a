//! One shared-memory segment: a memfd (or a POSIX shm file) mapped into this process.
//!
//! This is the only module of the crate with `unsafe` code, and it needs it for two things
//! the safe standard library cannot do: mapping a file into memory (`memmap2`'s constructors
//! are `unsafe` because another process may change or truncate the file) and reading or
//! writing ranges of that mapping while other ranges are in use elsewhere. Soundness rests on
//! three rules every caller keeps: segments never shrink (we create them at their final size
//! and never truncate them; a peer's segment is checked against its size when opened); every
//! access is bounds-checked here; and a range is only written by the side that owns it (the
//! arena hands each range to one call, the worker hands a result range over only when done).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::MmapRaw;

/// A mapped segment shared with a worker.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Keeps the memory alive while mapped (and lets the peer open it through /proc).
    _file: File,
    map: MmapRaw,
    len: usize,
    /// The path the peer opens to map this segment.
    path: String,
    /// A POSIX shm file to remove when the segment is dropped.
    unlink: Option<PathBuf>,
}

// The mapping is plain shared memory; access goes through the bounds-checked methods below.
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

impl Segment {
    /// Creates a segment of `len` bytes: a memfd when the kernel has them (the peer maps it
    /// through `/proc/<our pid>/fd/<fd>`), else a 0600 file under `/dev/shm` removed on drop.
    pub(crate) fn create(name: &str, len: usize) -> io::Result<Self> {
        let cname = CString::new(name).map_err(|_| io::Error::other("segment name has a NUL"))?;
        match nix::sys::memfd::memfd_create(&cname, nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC) {
            Ok(fd) => {
                // SAFETY: `fd` is a fresh, owned descriptor; File takes its ownership.
                let file = unsafe { File::from_raw_fd(fd.into_raw_fd()) };
                file.set_len(len as u64)?;
                let path = format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd());
                Self::map(file, len, path, None)
            }
            Err(_) => {
                let path = Path::new("/dev/shm").join(name);
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode_0600()
                    .open(&path)?;
                file.set_len(len as u64)?;
                Self::map(file, len, path.display().to_string(), Some(path))
            }
        }
    }

    /// Maps a segment the worker created, read-write (we write its release flags).
    pub(crate) fn open_peer(path: &str, expected_len: usize) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = file.metadata()?.len() as usize;
        if len < expected_len {
            return Err(io::Error::other(format!(
                "segment {path} has {len} bytes, fewer than the {expected_len} the handle names"
            )));
        }
        Self::map(file, len, path.to_owned(), None)
    }

    fn map(file: File, len: usize, path: String, unlink: Option<PathBuf>) -> io::Result<Self> {
        // SAFETY: see the module docs: the file is never truncated below `len` while mapped.
        let map = MmapRaw::map_raw(&file)?;
        if map.len() < len {
            return Err(io::Error::other("mapping is shorter than the segment"));
        }
        Ok(Self {
            _file: file,
            map,
            len,
            path,
            unlink,
        })
    }

    /// The segment's size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The path a peer opens to map this segment.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    fn check(&self, off: usize, len: usize) -> io::Result<()> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(io::Error::other(format!(
                "range {off}+{len} is outside the {}-byte segment",
                self.len
            ))),
        }
    }

    /// Copies `data` into the segment at `off` (a range the caller owns).
    pub(crate) fn write(&self, off: usize, data: &[u8]) -> io::Result<()> {
        self.check(off, data.len())?;
        // SAFETY: bounds checked above; the range belongs to the caller alone (module docs).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.as_mut_ptr().add(off),
                data.len(),
            );
        }
        Ok(())
    }

    /// Views `len` bytes at `off` (a range nobody writes while the view lives).
    pub(crate) fn slice(&self, off: usize, len: usize) -> &[u8] {
        if self.check(off, len).is_err() {
            return &[];
        }
        // SAFETY: bounds checked; the range is not written while viewed (module docs).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off), len) }
    }

    /// Stores a 32-bit flag at `off` (4-byte aligned), visible to the peer at once.
    pub(crate) fn store_flag(&self, off: usize, value: u32) {
        if !off.is_multiple_of(4) || self.check(off, 4).is_err() {
            return;
        }
        // SAFETY: in bounds and aligned; AtomicU32 has the layout of u32, and the peer only
        // reads this word.
        let flag = unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU32) };
        flag.store(value, Ordering::Release);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(path) = &self.unlink {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `OpenOptions::mode(0o600)` without importing the extension trait at every call.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_shared_through_its_path() {
        let a = Segment::create("snakepit-test-segment", 4096).unwrap();
        a.write(100, b"hello").unwrap();
        let b = Segment::open_peer(a.path(), 4096).unwrap();
        assert_eq!(b.slice(100, 5), b"hello");
        b.store_flag(8, 2);
        assert_eq!(a.slice(8, 4), &2u32.to_ne_bytes());
        assert!(a.write(4095, b"xy").is_err());
        assert!(a.slice(4000, 200).is_empty());
        assert!(Segment::open_peer(a.path(), 8192).is_err());
    }
}
