//! Collaborative documents on the server: a blind sequencer's storage.
//!
//! The server orders and stores opaque (encrypted) document operations and
//! snapshots; it never reads or transforms them (docs/ot.md). This module
//! owns the embedded SQLite and the Redis implementations of the storage
//! contract ([`DocStore`], in the `sealcast-sequencer` crate beside the
//! reference in-memory store and the storage policy) and the [`Sequencer`] that orders ops; the channel events
//! are handled in `connection` (docs/protocol.md, "Documents").

mod bulk;
mod redis_store;
mod sequencer;
mod slots;
mod sqlite;

pub use redis_store::RedisStore;
pub use sealcast_sequencer::{
    AppendOutcome, DocId, DocLimits, DocStore, JoinState, MemoryStore, Page, PageFill, Snapshot, StoreError,
    StoredOp,
};
pub use sequencer::{JOIN_PAGE, Sequencer};
pub use sqlite::SqliteStore;
