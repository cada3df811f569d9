//! The machine's vocabulary with the app: its tuning
//! ([`MachineConfig`]), what it reports ([`Event`]), why a command was
//! refused ([`CommandError`]) and how to open a document ([`DocOptions`]).

use std::time::Duration;

use serde_json::Value;

use crate::client::presence::Member;
use crate::client::session::{ClientError, ConnectionState, SessionConfig};
use crate::client::streams::CatchUpOutcome;
use crate::protocol::history::HistoryError;

use super::scroll_back::HistoryRead;
use crate::crypto::{CryptoError, Scope};
use crate::doc::{DocClientError, DocClientEvent, DocConfig};
use crate::keys::{KeyRefusal, KeyRequest};

/// Tuning of a [`ClientMachine`].
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// The own link's pings, timeouts and backoff.
    pub session: SessionConfig,
    /// Most received events held waiting for keys, and most sealed events
    /// waiting for a key to seal with (each; default 1,000). Past it the
    /// oldest received one is delivered as undecryptable and a new sealed
    /// send is refused.
    pub max_held: usize,
    /// Longest wait for the app's answer to a `NeedKey` (default 30 s);
    /// then held events are delivered as undecryptable and waiting sends
    /// reported as not sent.
    pub key_timeout: Duration,
    /// After the app refused a key, events naming it within this time are
    /// undecryptable at once, without asking again (default 10 s).
    pub key_retry_after: Duration,
    /// `None` (the default): the machine draws nonces, op ids and jitter
    /// from the operating system. `Some(seed)`: from a deterministic
    /// generator, so a test run reproduces every byte (the harness).
    /// **Tests only**: the same seed under the same key repeats AES-GCM
    /// nonces.
    pub test_rng_seed: Option<u64>,
    /// Longest wait for the server's answer to a history read of a
    /// catch-up (default 10 s); then the catch-up fails
    /// ([`CatchUpFailure::NoAnswer`](crate::client::CatchUpFailure)) and
    /// the live events it held are delivered.
    pub catch_up_timeout: Duration,
}

impl Default for MachineConfig {
    fn default() -> MachineConfig {
        MachineConfig {
            session: SessionConfig::default(),
            max_held: 1000,
            key_timeout: Duration::from_secs(30),
            key_retry_after: Duration::from_secs(10),
            test_rng_seed: None,
            catch_up_timeout: Duration::from_secs(10),
        }
    }
}

/// Something for the app: what happened, or a request it must answer.
///
/// Not `#[non_exhaustive]`, on purpose: every binding matches each variant,
/// so a new one is a compile error on every platform (Kotlin, Swift,
/// Python, the browser) rather than an event silently dropped.
#[derive(Debug)]
pub enum Event {
    /// The own link's connection state changed.
    State(ConnectionState),
    /// Subscribed (again after every reconnect).
    Subscribed {
        /// The channel.
        channel: String,
    },
    /// A subscription was refused.
    SubscriptionFailed {
        /// The channel.
        channel: String,
        /// The server's HTTP-style status, if any.
        status: Option<u16>,
        /// Why.
        message: String,
    },
    /// An event; sealed fields are already opened (`scope` says they were).
    Message {
        /// The channel.
        channel: Option<String>,
        /// Event name.
        event: String,
        /// Data, plaintext.
        data: Value,
        /// Sender, on presence channels.
        user_id: Option<String>,
        /// The scope its sealed fields were bound to, if it had any.
        scope: Option<Scope>,
    },
    /// An event whose sealed fields could not be opened: delivered as an
    /// error, never as ciphertext or a silently dropped event.
    Undecryptable {
        /// The channel.
        channel: Option<String>,
        /// Event name.
        event: String,
        /// Sender, on presence channels.
        user_id: Option<String>,
        /// Why.
        error: CryptoError,
    },
    /// A member joined a presence channel.
    MemberAdded {
        /// The channel.
        channel: String,
        /// The member.
        member: Member,
    },
    /// A member left a presence channel.
    MemberRemoved {
        /// The channel.
        channel: String,
        /// The member.
        member: Member,
    },
    /// A `pusher:error` from the server, or a server frame the link could
    /// not read.
    Error {
        /// Pusher error code, if any.
        code: Option<u16>,
        /// Message.
        message: String,
    },
    /// A key request ended without a usable key: the provider refused it,
    /// or its grant could not be used. What waited for it was reported or
    /// skipped on its own terms (undecryptable, [`Event::NotSent`], the
    /// document's `Skipped` or closing).
    KeyRefused {
        /// The request.
        request: KeyRequest,
        /// Why.
        error: KeyError,
    },
    /// A channel with history caught up after a resubscription or a gap
    /// (docs/history.md): every missed event was delivered before this,
    /// once and in order, or the outcome says what could not be.
    CatchUp {
        /// The channel.
        channel: String,
        /// How it ended.
        outcome: CatchUpOutcome,
    },
    /// The answer to [`ClientMachine::read_history`](super::ClientMachine::read_history):
    /// a page of the channel's history, opened, or the server's refusal.
    History {
        /// The channel.
        channel: String,
        /// The id `read_history` returned.
        request_id: String,
        /// The page, or why there is none.
        result: Result<HistoryRead, HistoryError>,
    },
    /// A sealed event that waited for its key was not sent.
    NotSent {
        /// Its channel.
        channel: String,
        /// Its event name.
        event: String,
        /// Why.
        reason: NotSentReason,
    },
    /// A frame on a document's channel could not be read (caused by: the
    /// server or a co-subscriber); it was dropped.
    BadDocumentFrame {
        /// The document.
        doc_id: String,
        /// Why.
        error: DocClientError,
    },
    /// Something happened to an open document.
    Document {
        /// The document.
        doc_id: String,
        /// What.
        event: DocClientEvent,
    },
    /// Request: sign `channel` for `socket_id` (the app calls its auth
    /// endpoint), then call [`ClientMachine::handle_authorization`].
    NeedAuthorization {
        /// The connection to sign.
        socket_id: String,
        /// The channel.
        channel: String,
    },
    /// Request: fetch this key, then call [`ClientMachine::handle_key`].
    /// What needs it waits (bounded by [`MachineConfig`]).
    NeedKey(KeyRequest),
}

impl Event {
    /// One line for a local failure ([`Event::KeyRefused`],
    /// [`Event::NotSent`], [`Event::BadDocumentFrame`]), for platforms that
    /// receive them through an error callback; `None` for other events.
    pub fn local_failure(&self) -> Option<String> {
        match self {
            Event::KeyRefused { request, error } => {
                Some(format!("key {} (v{:?}): {error}", request.kid, request.kv))
            }
            Event::NotSent { channel, event, reason } => {
                Some(format!("{event} on {channel} was not sent: {reason}"))
            }
            Event::BadDocumentFrame { doc_id, error } => {
                Some(format!("document {doc_id}: bad frame: {error}"))
            }
            _ => None,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The link refused it (not connected, not subscribed, bad name, a
    /// client event the server would refuse).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Sealing failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The document refused it.
    #[error(transparent)]
    Document(#[from] DocClientError),
    /// No such open document.
    #[error("document {0} is not open")]
    NoDocument(String),
    /// Too many sealed events or key requests already wait for keys
    /// ([`MachineConfig::max_held`]).
    #[error("{0} sealed events or key requests already wait for keys")]
    Busy(usize),
}

/// How to open a document.
#[derive(Debug, Clone)]
pub struct DocOptions {
    /// On `presence-doc-…` (a roster, user ids on cursors) instead of
    /// `private-doc-…`.
    pub presence: bool,
    /// The key id to seal with. When the ring lacks it, the key is asked
    /// for with the document id and the session's key hint once the join
    /// has learnt it.
    pub kid: String,
    /// The hint of the ring's key for `kid`, when the app knows it: claimed
    /// for a new document; a different recorded hint makes the document
    /// ask for the recorded session's key instead. `None` with a key in the
    /// ring: the key is used as it is (a fixed key per document).
    pub key_hint: Option<String>,
    /// Snapshot and digest intervals.
    pub config: DocConfig,
}

/// Why a key request ended without a usable key
/// ([`Event::KeyRefused`]).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The provider refused it.
    #[error("key provider: {0}")]
    Provider(KeyRefusal),
    /// The provider answered another version than the one asked (caused
    /// by: the provider); the key is kept, the request counts as refused.
    #[error("key provider: asked for version {asked}, got {got}")]
    WrongVersion {
        /// The version asked for.
        asked: u32,
        /// The version answered.
        got: u32,
    },
    /// The key ring refused the grant, e.g. another key under the same
    /// version (caused by: the provider).
    #[error("key provider: {0}")]
    Rejected(CryptoError),
    /// The document refused the grant, e.g. an over-long key hint (caused
    /// by: the provider).
    #[error("key provider: {0}")]
    DocumentRejected(DocClientError),
}

/// Why a sealed event that waited for its key was not sent
/// ([`Event::NotSent`]).
#[derive(Debug, thiserror::Error)]
pub enum NotSentReason {
    /// The key to seal with did not come within `key_timeout` (caused by:
    /// a slow or silent provider).
    #[error("the key {kid} did not arrive within {after:?}")]
    KeyTimedOut {
        /// The key id.
        kid: String,
        /// How long it waited.
        after: Duration,
    },
    /// The provider refused the key to seal with.
    #[error("key provider: {0}")]
    KeyRefused(KeyRefusal),
    /// The key came, but sending failed (not connected or subscribed any
    /// more, the key at its usage limit…).
    #[error(transparent)]
    Refused(CommandError),
}
