//! Test harness shared by the integration tests: a test CA, real HTTPS receivers, the real `hookrelay`
//! binary as a child process, and an HTTP/1.1 client for its unix socket and TCP listener.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod client;
pub mod hostile;
pub mod lines;
pub mod proxy;
pub mod receive;
pub mod receiver;
pub mod relay;
pub mod tls;

use std::future::Future;
use std::time::Duration;

/// Upper bound on any wait in the tests: reached only when something is broken, never to pace a test.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test with `what` if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}
