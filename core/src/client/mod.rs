//! The client SDK's sans-IO half. [`ClientMachine`] is the whole client as
//! one state machine (link, keys, sealed events, held messages,
//! documents); it composes the Pusher link ([`ClientSession`]: connection
//! state, subscriptions, presence rosters, pings, reconnect policy), the
//! sealed-event helpers ([`sealed`]) and the document clients
//! ([`crate::doc::DocClient`]); `answers` types the app's answers to its
//! requests. The `sealcast-net` crate (core/net) drives it over a real
//! WebSocket.

mod answers;
mod backoff;
#[cfg(test)]
mod harness;
mod held;
mod link;
mod machine;
mod presence;
pub mod sealed;
mod session;

pub use crate::keys::{KeyGrant, KeyRefusal, KeyRequest};
pub use answers::{AuthRefusal, KeyError, NotSentReason};
pub use backoff::{Backoff, CloseClass};
pub use link::Transmit;
pub use machine::{
    CHAT_EVENT, ClientMachine, CommandError, DocOptions, Document, Event, MachineConfig, PRESENCE_STATE_EVENT,
};
pub use presence::{Member, Roster};
pub use session::{
    Action, ChannelAuth, ClientError, ClientEvent, ClientSession, ConnectionState, SessionConfig,
};
