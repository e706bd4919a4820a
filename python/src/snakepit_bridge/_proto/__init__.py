"""Generated gRPC stubs of the bridge protocol (never edit by hand; run `cargo xtask codegen`)."""
