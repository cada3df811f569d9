//! # sealcast-sequencer
//!
//! The blind sequencer's storage, sans-IO: the [`DocStore`] contract that
//! the server's SQLite and Redis stores implement, the policy every store
//! applies (snapshot placement, tombstones, size and quota checks:
//! [`policy`]), [`MemoryStore`] (the reference implementation, also the
//! store of core's deterministic client harness), [`read_join`] (the one
//! reading of a join answer) and, behind the `conformance` feature, the
//! test suite every store must pass.
//!
//! It lives beside `sealcast-core`, not inside it, so that clients (the
//! wasm and mobile builds) never compile the server's storage policy, and
//! changing that policy never changes the client crate. It depends on core
//! only for the document protocol's wire types and codes
//! (`sealcast_core::protocol::doc`).
//!
//! ## The contract
//!
//! Contract (every implementation passes `conformance`):
//! - `append` assigns the next sequence number and makes the op durable
//!   before returning (the server acks only after it); two appends can
//!   never get the same number.
//! - An op id already appended for the document returns its original
//!   sequence number (`Duplicate`) and stores nothing, when the resubmission
//!   is the same op: the same authenticated author (or both anonymous), or
//!   the same base and payload. Otherwise it is someone else's op id
//!   (`StoreError::Conflict`): the first writer keeps it, and nobody can
//!   get another user's op acknowledged as a duplicate and dropped.
//! - An op whose base is below the document's *floor* is refused with
//!   `StoreError::Resync`; so is a base in the future. Compaction and
//!   snapshots raise the floor: a client joining from a snapshot at `S`
//!   must be able to place every later op, so no op based before `S` may
//!   follow it.
//! - A snapshot at `S` is refused (`SnapshotStale`) while a retained op
//!   after `S` is based before `S`, or when `S` is more than
//!   [`SNAPSHOT_LAG_MAX`] behind the head.
//! - Snapshots are kept per uploader (a user id, or a connection for
//!   anonymous ones): each uploader's newest, at most [`SNAPSHOTS_KEPT`]
//!   uploaders, none more than [`SNAPSHOT_SLOT_SPAN`] ops behind the
//!   newest; a new uploader displaces the oldest kept snapshot. The server
//!   cannot tell a good snapshot from garbage, so one uploader (say, a
//!   co-subscriber without the key) can never displace another's, and the
//!   sequencer compacts only behind the *oldest* kept snapshot: a joiner
//!   that cannot open the newest falls back to an older one plus its ops.
//! - Compaction drops payloads up to a sequence number but remembers their
//!   op ids, so a late resubmission is still a `Duplicate`.
//! - Payloads and key hints are opaque, non-empty strings; sizes are limited.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod join;
mod memory;
pub mod policy;
mod store;

pub use join::{JoinQuery, JoinState, read_join};
pub use memory::MemoryStore;
pub use store::{AppendOutcome, DocId, DocLimits, DocStore, Page, PageFill, Snapshot, StoreError, StoredOp};
