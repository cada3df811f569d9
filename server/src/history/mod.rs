//! Channel history: blind, bounded streams of the events published on the
//! channels an app's rules name (docs/history.md).
//!
//! The relay keeps what it already relays — the event name, its data as
//! raw JSON text (sealed envelopes for sealed fields), the sender's user id
//! — never reading it. Each channel is a stream with consecutive offsets
//! within an epoch ([`Position`]); [`History`] owns the order: on one
//! node, appending an event and delivering its frame happen under one
//! per-channel lock, so every subscriber sees offsets in increasing order;
//! in cluster mode the Redis store's script keeps the event and publishes
//! it on the bus in the order kept ([`HistoryStore::append_broadcast`]),
//! and every node delivers from there.
//!
//! Stores ([`HistoryStore`]): [`MemoryHistory`] (the default; a restart is
//! a new epoch), [`SqliteHistory`] (the data directory; survives
//! restarts) and, in cluster mode, [`RedisHistory`] (one stream per
//! channel for every node). All answer reads with the one page rule in
//! [`page`].

mod memory;
mod page;
mod redis;
mod rules;
mod sqlite;

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealcast_core::protocol::history::{HistoryEvent, HistoryPage, Position, Read};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use memory::MemoryHistory;
pub use page::{PageBounds, StreamState};
pub use redis::RedisHistory;
pub use rules::{HistoryRule, StreamLimits};
pub use sqlite::SqliteHistory;

/// An event to keep.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// The event name.
    pub event: &'a str,
    /// Its data as relayed (raw JSON text).
    pub data: Option<&'a RawValue>,
    /// The sender's user id, if any.
    pub user_id: Option<&'a str>,
}

impl NewEvent<'_> {
    /// What it counts against the byte limits: its parts plus a fixed
    /// overhead for the offset, time and bookkeeping.
    pub fn cost(&self) -> usize {
        EVENT_OVERHEAD_BYTES
            + self.event.len()
            + self.data.map_or(4, |d| d.get().len())
            + self.user_id.map_or(0, str::len)
    }
}

/// Bytes counted per kept event besides its name, data and user id.
pub const EVENT_OVERHEAD_BYTES: usize = 64;

/// Why a store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryStoreError {
    /// The backend failed (disk, database); the message says how. Never
    /// holds event data.
    #[error("history store failed: {0}")]
    Backend(String),
    /// The read asks for an offset past the stream's head in its epoch.
    #[error("`since` is past the newest offset of this stream")]
    PastHead,
}

/// Where kept events live. Calls are short and synchronous; the caller
/// ([`History`]) serializes appends per channel.
pub trait HistoryStore: Send + Sync + Debug {
    /// Keeps `event` as the stream's next offset (starting a stream, with
    /// a new epoch, if there is none), then trims the stream and the app
    /// to `limits`. Returns the event's position.
    fn append(
        &self,
        app: &str,
        channel: &str,
        event: NewEvent<'_>,
        limits: &StreamLimits,
        now_ms: u64,
    ) -> Result<Position, HistoryStoreError>;

    /// Answers `read` from what is kept (events older than `limits.ttl`
    /// are not kept).
    fn read(
        &self,
        app: &str,
        channel: &str,
        read: &Read,
        limits: &StreamLimits,
        bounds: PageBounds,
        now_ms: u64,
    ) -> Result<HistoryPage, HistoryStoreError>;

    /// Bytes kept for `app` (its total is bounded by `history_max_bytes`).
    fn app_bytes(&self, app: &str) -> usize;

    /// Keeps `event` like [`HistoryStore::append`] and, in the same step,
    /// publishes its frame with its position on the cluster bus, so every
    /// node gets kept events in the order they were kept. Only a store
    /// every node shares can; the others refuse.
    fn append_broadcast(
        &self,
        _app: &str,
        _channel: &str,
        _event: NewEvent<'_>,
        _limits: &StreamLimits,
        _now_ms: u64,
        _broadcast: &Broadcast<'_>,
    ) -> Result<Position, HistoryStoreError> {
        Err(HistoryStoreError::Backend("this store cannot publish to the cluster bus".into()))
    }
}

/// A kept event's publication on the cluster bus (see
/// [`HistoryStore::append_broadcast`]): frames are JSON objects to which
/// the store adds `offset` and `epoch`.
#[derive(Debug, Clone, Copy)]
pub struct Broadcast<'a> {
    /// The bus's pub/sub channel of the app.
    pub bus_channel: &'a str,
    /// This node's id.
    pub node: &'a str,
    /// The app.
    pub app: &'a str,
    /// The event's frame, without its position.
    pub frame: &'a str,
    /// A socket not to deliver to, and what it gets instead (without its
    /// position).
    pub except: Option<(&'a str, &'a str)>,
}

/// Which store keeps history (`[history] store`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// In the server's memory: fast; a restart starts new epochs (clients
    /// are told `epoch_changed`).
    #[default]
    Memory,
    /// A SQLite file in the data directory: survives restarts.
    Sqlite,
}

/// Server-wide history settings (`[history]`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Where history is kept.
    #[serde(default)]
    pub store: StoreKind,
    /// Largest page, in bytes of kept events (at least one event always
    /// fits).
    #[serde(default = "default_page_bytes")]
    pub max_page_bytes: usize,
}

fn default_page_bytes() -> usize {
    256 * 1024
}

impl Default for HistorySettings {
    fn default() -> HistorySettings {
        HistorySettings { store: StoreKind::default(), max_page_bytes: default_page_bytes() }
    }
}

/// Channels whose appends and deliveries are serialized by one lock
/// (stripes: a lock per channel would need a map that grows with names).
const ORDER_STRIPES: usize = 256;

/// The history of every app: the store, and the order of appends and
/// deliveries per channel.
#[derive(Debug)]
pub struct History {
    store: Arc<dyn HistoryStore>,
    settings: HistorySettings,
    order: Vec<Mutex<()>>,
}

impl History {
    /// History in `settings.store` (SQLite: `history.sqlite3` under
    /// `data_dir`), or in cluster mode in the cluster's Redis (`cluster`:
    /// its URL), which every node shares.
    pub fn open(
        settings: HistorySettings,
        data_dir: &std::path::Path,
        cluster: Option<&str>,
    ) -> Result<History, HistoryStoreError> {
        let store: Arc<dyn HistoryStore> = match (cluster, settings.store) {
            (Some(url), _) => Arc::new(RedisHistory::open(url)?),
            (None, StoreKind::Memory) => Arc::new(MemoryHistory::default()),
            (None, StoreKind::Sqlite) => Arc::new(SqliteHistory::open(&data_dir.join("history.sqlite3"))?),
        };
        Ok(History::with_store(settings, store))
    }

    /// History in memory with the default settings.
    pub fn in_memory() -> History {
        History::with_store(HistorySettings::default(), Arc::new(MemoryHistory::default()))
    }

    /// History over `store`.
    pub fn with_store(settings: HistorySettings, store: Arc<dyn HistoryStore>) -> History {
        History { store, settings, order: (0..ORDER_STRIPES).map(|_| Mutex::new(())).collect() }
    }

    /// Keeps `event` on `channel`, then runs `deliver` with its position
    /// before any later event of the channel is kept: deliveries happen
    /// in offset order.
    pub fn append_then<T>(
        &self,
        app: &str,
        channel: &str,
        event: NewEvent<'_>,
        limits: &StreamLimits,
        deliver: impl FnOnce(&Position) -> T,
    ) -> Result<T, HistoryStoreError> {
        self.ordered(app, channel, || {
            let position = self.store.append(app, channel, event, limits, now_ms())?;
            Ok(deliver(&position))
        })
    }

    /// Runs `f` while no event of `channel` is kept and delivered (a
    /// subscription reads where the stream stands and joins in between
    /// two events, never inside one).
    pub fn ordered<T>(&self, app: &str, channel: &str, f: impl FnOnce() -> T) -> T {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (app, channel).hash(&mut hasher);
        let stripe = &self.order[(hasher.finish() % ORDER_STRIPES as u64) as usize];
        // A panic inside leaves nothing half-done in the store.
        let _order = stripe.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f()
    }

    /// Keeps `event` and publishes it on the cluster bus in the order kept
    /// (cluster mode; see [`HistoryStore::append_broadcast`]).
    pub fn append_broadcast(
        &self,
        app: &str,
        channel: &str,
        event: NewEvent<'_>,
        limits: &StreamLimits,
        broadcast: &Broadcast<'_>,
    ) -> Result<Position, HistoryStoreError> {
        self.store.append_broadcast(app, channel, event, limits, now_ms(), broadcast)
    }

    /// Answers a read of `channel`'s history.
    pub fn read(
        &self,
        app: &str,
        channel: &str,
        read: &Read,
        limits: &StreamLimits,
    ) -> Result<HistoryPage, HistoryStoreError> {
        let bounds = PageBounds { events: read.limit() as usize, bytes: self.settings.max_page_bytes };
        self.store.read(app, channel, read, limits, bounds, now_ms())
    }

    /// Where `channel`'s stream stands now (offset 0 in the empty epoch
    /// when nothing is kept), and its newest kept event.
    pub fn newest(
        &self,
        app: &str,
        channel: &str,
        limits: &StreamLimits,
    ) -> Result<(Position, Option<HistoryEvent>), HistoryStoreError> {
        let newest = Read { limit: Some(1), ..Read::default() };
        let bounds = PageBounds { events: 1, bytes: 1 };
        let page = self.store.read(app, channel, &newest, limits, bounds, now_ms())?;
        Ok((Position { offset: page.head, epoch: page.epoch }, page.events.into_iter().next()))
    }

    /// Bytes kept for `app`.
    pub fn app_bytes(&self, app: &str) -> usize {
        self.store.app_bytes(app)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A new random epoch (16 hex digits).
pub fn new_epoch() -> String {
    let mut bytes = [0u8; 8];
    // Without the OS's randomness the epoch is the time: still unlike
    // the epochs before it, which is all an epoch must be.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (now_ms() ^ 0x5ea1_ca57).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `ttl` in milliseconds, saturating.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
