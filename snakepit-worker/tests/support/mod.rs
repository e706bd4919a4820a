//! Shared support for the worker integration tests.

/// Defines `mod <name> { fn fast(), fn grpc() }`: one test body, run once per transport.
#[macro_export]
macro_rules! on_both_transports {
    ($(#[$attr:meta])* async fn $name:ident($t:ident: TransportKind) $body:block) => {
        mod $name {
            use super::*;

            async fn body($t: TransportKind) $body

            $(#[$attr])*
            async fn fast() {
                body(TransportKind::Fast).await
            }

            $(#[$attr])*
            async fn grpc() {
                body(TransportKind::Grpc).await
            }
        }
    };
}
