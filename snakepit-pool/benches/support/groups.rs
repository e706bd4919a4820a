// The groups of the end-to-end bench suite, in the order they run. Included by the suite
// (`benches/e2e.rs`) and by `cargo xtask bench`, which checks `--only` against it.

/// The groups of the suite, in the order they run.
const GROUPS: &[&str] = &[
    "latency",
    "throughput",
    "startup",
    "payload",
    "zero_copy",
    "recovery",
    "zygote",
];
