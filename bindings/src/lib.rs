//! sealcast-ffi: the uniffi surface of the sealcast client SDK for Kotlin
//! (`io.sealcast`), Swift (`Sealcast`) and Python (`sealcast`).
//!
//! Thin wrappers over `sealcast_core`, one module per area: [`client`]
//! (connection, channels, sealed events, presence), [`document`]
//! (collaborative documents), [`crypto`] (keys and sealing without a
//! connection), [`delta`] (Quill Delta operations). No call is `async`:
//! each returns at once and results arrive through the app's listeners,
//! on a thread the SDK owns. JSON crosses the boundary as strings (event
//! data, Quill deltas), keys as 32-byte arrays.

uniffi::setup_scaffolding!("sealcast");

pub mod client;
pub mod crypto;
pub mod delta;
pub mod document;
pub mod document_event;
mod error;
mod runtime;

pub use error::{CallbackError, SealcastError};
