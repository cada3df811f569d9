//! [`SyncRedis`]: one blocking Redis connection for the stores whose calls
//! are synchronous (documents, history): connected lazily, with connect
//! and read timeouts so a Redis that hangs fails the call instead of the
//! worker, and dropped after an error so the next call reconnects.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::Connection;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one reply may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A lazily connected, self-healing blocking connection.
pub struct SyncRedis {
    client: redis::Client,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SyncRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRedis").finish_non_exhaustive()
    }
}

impl SyncRedis {
    /// A connection to the Redis at `url` (not connected yet).
    pub fn open(url: &str) -> redis::RedisResult<SyncRedis> {
        Ok(SyncRedis { client: redis::Client::open(url)?, conn: Mutex::new(None) })
    }

    /// Runs `f` on the connection (connecting first if needed); a failed
    /// call drops it so the next call reconnects.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let mut guard: MutexGuard<'_, Option<Connection>> =
            self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match guard.as_mut() {
            Some(conn) => conn,
            None => {
                let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
                conn.set_read_timeout(Some(READ_TIMEOUT))?;
                guard.insert(conn)
            }
        };
        let result = f(conn);
        if result.is_err() {
            *guard = None;
        }
        result
    }
}
