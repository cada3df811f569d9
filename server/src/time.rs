//! Waiting for an optional deadline in a `select!`.

use tokio::time::Instant;

/// Resolves at `at`, or never (a `select!` branch that is off).
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
