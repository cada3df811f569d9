//! The client SDK's sans-IO half: a Pusher-protocol connection as a state
//! machine ([`ClientSession`]: connection state, subscriptions, presence
//! rosters, pings, reconnect policy), sealed client events ([`sealed`]),
//! and — with the `net` feature — [`crate::net`] drives it over a real
//! WebSocket.

mod backoff;
mod presence;
pub mod sealed;
mod session;

pub use backoff::{Backoff, CloseClass};
pub use presence::{Member, Roster};
pub use session::{
    Action, ChannelAuth, ClientError, ClientEvent, ClientSession, ConnectionState, SessionConfig,
};
