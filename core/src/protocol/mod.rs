//! The Pusher Channels protocol, version 7: what goes over the WebSocket.
//!
//! Owns channel names and their kinds ([`ChannelName`]), parsing client
//! frames without touching event payloads ([`ClientFrame`]), encoding server
//! frames ([`server`]), the HMAC-SHA256 channel and user authentication
//! signatures ([`auth`]), the protocol's error codes ([`codes`]), the
//! handshake path ([`handshake`]) and
//! sealcast's document extension ([`doc`]: every document message, typed,
//! both directions), its history extension ([`history`]: stream
//! positions, reads and their answers) and its key directory
//! ([`directory`]: devices' MLS key packages). It leaves
//! sockets and state to the server and the client session. Event `data` is
//! carried as raw JSON text end to end: the relay routes events without
//! parsing their payloads. Reference: `docs/protocol.md`.

pub mod auth;
mod channel;
pub mod client;
pub mod codes;
pub mod directory;
pub mod doc;
pub mod event;
mod frame;
pub mod handshake;
pub mod history;
pub mod server;

pub use channel::{ChannelKind, ChannelName, MAX_CHANNEL_NAME_LEN, SERVER_TO_USER_PREFIX, is_cache};
pub use frame::{
    ClientFrame, MAX_USER_ID_BYTES, PresenceMember, SigninData, SubscribeData, UnsubscribeData, WireError,
};
