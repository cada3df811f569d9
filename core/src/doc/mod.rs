//! Collaborative documents, end to end encrypted: [`DocSync`] drives an
//! OT session ([`crate::ot::session`]) over the sealcast document channel
//! protocol, sealing every op, snapshot and cursor so the server only sees
//! sizes and sequence numbers (`docs/ot.md`, `docs/protocol.md`), with keys
//! lent per call by the client's key owner ([`crate::keys`]);
//! [`DocClient`] is one document with keys of its own, for tools and
//! tests.

mod client;
mod events;
pub mod payload;
mod sync;
mod versions;

pub use client::DocClient;
pub use events::{DivergeReason, DocClientError, DocClientEvent, DocConfig, SkipReason};
pub use sync::{DocSync, RETRY_FIRST, RETRY_MAX};
pub use versions::{VERSIONS_KEPT, VersionError};

/// Presence client event carrying sealed cursors.
pub const CURSOR_EVENT: &str = crate::protocol::doc::CURSOR;

#[cfg(test)]
mod tests;
