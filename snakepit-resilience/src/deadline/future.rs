//! The deadline's response future: the same race of call and sleep as the per-attempt timeout.

pub use crate::timeout::future::ResponseFuture;
