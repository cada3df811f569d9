//! Cluster mode: the Redis pub/sub [`RedisBroker`] (`--cluster
//! redis://…`) that carries what one node tells the others (the
//! vocabulary and the [`Broker`](crate::app::bus::Broker) contract live
//! with the apps, in [`crate::app::bus`]), and the [`node`] tasks that tie
//! this process's apps to it. See docs/scaling.md.
//!
//! A node delivers to its own connections directly and forwards the same
//! thing to the others; every node ignores what it sent itself. So an
//! event reaches each subscriber exactly once, and one node's events keep
//! their order (one publishing connection per node).

pub mod hooks;
pub mod node;
pub mod presence;
mod redis;

pub use self::redis::{HEARTBEAT_EVERY, INBOX_MAX, NODE_TTL, RedisBroker, redact_url};

/// Why the cluster connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cluster URL is not a Redis URL (caused by: the operator's
    /// config). The URL is shown with its password redacted.
    #[error("cluster URL {url}: {source}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// Why.
        source: ::redis::RedisError,
    },
    /// Redis did not answer at start-up (caused by: environment).
    #[error("cannot reach Redis at {url}: {source}")]
    Unreachable {
        /// The URL, redacted.
        url: String,
        /// Why.
        source: ::redis::RedisError,
    },
    /// A Redis command failed (caused by: environment).
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
}

/// Every key matching `pattern` (SCAN: never blocks Redis like KEYS).
async fn scan(
    conn: &mut ::redis::aio::ConnectionManager,
    pattern: &str,
) -> Result<Vec<String>, ClusterError> {
    use ::redis::AsyncCommands;
    let mut iter = conn.scan_match::<_, String>(pattern).await?;
    let mut keys = Vec::new();
    while let Some(key) = iter.next_item().await {
        keys.push(key?);
    }
    Ok(keys)
}
