//! Shared support for the worker integration tests.

include!("transports.rs");
