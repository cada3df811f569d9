//! Giving memory back to the operating system after a flood.
//!
//! glibc's allocator keeps freed memory in its per-thread arenas: after
//! 2,000 connections came and went the server's RSS stayed at ~4× its
//! idle size (32 MB against 8 MB, measured; docs/benchmarks.md). Every
//! [`TRIM_EVERY`], when at least [`TRIM_AFTER_CLOSED`] connections have
//! closed since the last trim, the server asks glibc to release what it
//! can (`malloc_trim`, on the blocking pool: it walks the arenas; at most
//! once per period, so steady reconnect churn costs little). Elsewhere it
//! does nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::state::ServerState;

/// How often the connection count is looked at.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);
/// How many connections must have closed since the last trim.
pub const TRIM_AFTER_CLOSED: u64 = 200;

/// Starts the trimming task (needs a tokio runtime).
pub fn spawn_trimmer(state: Arc<ServerState>) {
    tokio::spawn(async move {
        let mut closed_at_trim = 0;
        loop {
            tokio::time::sleep(TRIM_EVERY).await;
            let open = u64::try_from(state.metrics.connections.get()).unwrap_or(0);
            let closed = state.metrics.connections_total.get().saturating_sub(open);
            if closed - closed_at_trim.min(closed) >= TRIM_AFTER_CLOSED {
                closed_at_trim = closed;
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free
    // lists; it has no preconditions.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released, "returned freed memory to the OS");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
