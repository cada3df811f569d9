//! The client SDK's sans-IO half. [`ClientMachine`] is the whole client as
//! one state machine (link, keys, sealed events, held messages,
//! documents); it composes the Pusher link ([`ClientSession`]: connection
//! state, subscriptions, presence rosters, pings, reconnect policy), the
//! sealed-event helpers ([`sealed`]), the key owner ([`crate::keys`]) and
//! the documents ([`crate::doc::DocSync`]); `auth` types the app's answer
//! to an authorization request. The `sealcast-net` crate (core/net) drives
//! it over a real WebSocket.

mod auth;
mod backoff;
#[cfg(test)]
mod harness;
mod held;
mod link;
mod machine;
mod presence;
pub mod sealed;
mod session;
mod streams;

pub use crate::keys::{KeyGrant, KeyRefusal, KeyRequest};
pub use auth::{AuthRefusal, ChannelAuth};
pub use backoff::{Backoff, CloseClass};
pub use link::Transmit;
pub use machine::{
    CHAT_EVENT, ClientMachine, CommandError, DocOptions, Document, Event, HistoryItem, HistoryRead, KeyError,
    MachineConfig, NotSentReason, PRESENCE_STATE_EVENT,
};
pub use presence::{Member, Roster};
pub use session::{Action, ClientError, ClientEvent, ClientSession, ConnectionState, SessionConfig};
pub use streams::{CatchUpFailure, CatchUpOutcome};
