//! Collaborative documents on the server: a blind sequencer's storage.
//!
//! The server orders and stores opaque (encrypted) document operations and
//! snapshots; it never reads or transforms them (docs/ot.md). This module
//! owns the storage contract ([`DocStore`]) and its embedded SQLite
//! implementation; the channel protocol that uses it comes with the
//! document-channel work.

mod sqlite;
mod store;

pub use sqlite::SqliteStore;
pub use store::{AppendOutcome, DocId, DocLimits, DocStore, MemoryStore, Snapshot, StoreError, StoredOp};

#[cfg(test)]
pub(crate) use store::conformance;
