//! Collaborative documents on the server: a blind sequencer's storage.
//!
//! The server orders and stores opaque (encrypted) document operations and
//! snapshots; it never reads or transforms them (docs/ot.md). This module
//! owns the storage contract ([`DocStore`]), its embedded SQLite
//! implementation and the [`Sequencer`] that orders ops; the channel events
//! are handled in `connection` (docs/protocol.md, "Documents").

mod bulk;
mod redis_store;
mod sequencer;
mod sqlite;
mod store;

pub use redis_store::RedisStore;
pub use sequencer::{JOIN_PAGE, JoinState, Sequencer};
pub use sqlite::SqliteStore;
pub use store::{
    AppendOutcome, DocId, DocLimits, DocStore, MemoryStore, Page, PageFill, Snapshot, StoreError, StoredOp,
};

#[cfg(test)]
pub(crate) use store::conformance;
