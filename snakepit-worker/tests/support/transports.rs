// One test body, run once per transport: shared by the worker's and the pool's integration
// tests (the pool's support includes this file), so both crates parameterise the same way.

/// Defines `mod <name> { fn fast(), fn grpc() }`: one test body, run once per transport.
///
/// ```ignore
/// on_both_transports! {
///     #[tokio::test]
///     async fn calls_work(transport: TransportKind) { ... }
/// }
/// ```
#[allow(unused_macros)]
macro_rules! on_both_transports {
    ($(#[$attr:meta])* async fn $name:ident($t:ident: TransportKind) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($t: snakepit_core::config::TransportKind) $body

            $(#[$attr])*
            async fn fast() {
                body(snakepit_core::config::TransportKind::Fast).await
            }

            $(#[$attr])*
            async fn grpc() {
                body(snakepit_core::config::TransportKind::Grpc).await
            }
        }
    };
}
