//! Collaborative documents, end to end encrypted: [`DocClient`] drives an
//! OT session ([`crate::ot::session`]) over the sealcast document channel
//! protocol, sealing every op, snapshot and cursor so the server only sees
//! sizes and sequence numbers (`docs/ot.md`, `docs/protocol.md`).

mod client;
pub mod payload;
mod versions;

pub use client::{
    CURSOR_EVENT, DivergeReason, DocClient, DocClientError, DocClientEvent, DocConfig, RETRY_FIRST, RETRY_MAX,
};
pub use versions::{VERSIONS_KEPT, VersionError};

#[cfg(test)]
mod tests;
