//! The Pusher Channels protocol, version 7: what goes over the WebSocket.
//!
//! Owns channel names and their kinds ([`ChannelName`]), parsing client
//! frames without touching event payloads ([`ClientFrame`]), encoding server
//! frames ([`server`]), the HMAC-SHA256 channel and user authentication
//! signatures ([`auth`]) and the protocol's error codes ([`codes`]). It leaves
//! sockets and state to the server and the client session. Event `data` is
//! carried as raw JSON text end to end: the relay routes events without
//! parsing their payloads. Reference: `docs/protocol.md`.

pub mod auth;
mod channel;
pub mod codes;
mod frame;
pub mod server;

pub use channel::{ChannelKind, ChannelName, MAX_CHANNEL_NAME_LEN};
pub use frame::{ClientFrame, MAX_USER_ID_BYTES, PresenceMember, SigninData, SubscribeData, WireError};
