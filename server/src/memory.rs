//! The process's resources: giving memory back to the operating system
//! after a flood, and the file descriptors the connection cap needs.
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

/// Descriptors kept free beyond the connection cap (the listener, the
/// document store, Redis, webhooks, logs).
pub const FD_RESERVE: u64 = 64;

/// Raises the soft open-files limit to the hard one and returns the
/// connection cap it allows: `wanted`, or fewer when the limit is lower
/// (so the server refuses at its cap instead of failing `accept`).
pub fn connection_cap(wanted: usize) -> usize {
    match raise_fd_limit() {
        Some(limit) if (limit.saturating_sub(FD_RESERVE) as usize) < wanted => {
            let cap = (limit.saturating_sub(FD_RESERVE) as usize).max(1);
            tracing::warn!(
                wanted,
                cap,
                open_files_limit = limit,
                "max_connections lowered to what the open-files limit allows (raise `ulimit -n`)"
            );
            cap
        }
        _ => wanted,
    }
}

#[cfg(unix)]
fn raise_fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    // `rlim_t` is not `u64` on every target.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn raise_fd_limit() -> Option<u64> {
    None
}
