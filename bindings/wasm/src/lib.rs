//! # sealcast-wasm
//!
//! sealcast in the browser: the core's [`ClientMachine`] over an external
//! Pusher transport (pusher-js owns the WebSocket), plus the sealing, key
//! and Delta helpers, exported with wasm-bindgen. Values cross as JSON
//! text, which the TypeScript package (`bindings/js`, `@sealcast/client`)
//! parses; that package holds no protocol logic, only the plumbing between
//! this module and pusher-js. See docs/web.md.
//!
//! Errors are thrown as JS `Error`s whose message starts with a stable code
//! (`busy: …`, `not_subscribed: …`), see [`error`].
//!
//! [`ClientMachine`]: sealcast_core::client::ClientMachine

mod error;
mod events;
mod helpers;
mod machine;

pub use helpers::*;
pub use machine::Machine;
