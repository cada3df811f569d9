//! The app's answers to the machine's requests, and how they fail: what a
//! key request asks ([`KeyRequest`]) and gets ([`KeyGrant`] or a
//! [`KeyRefusal`]), an authorizer's refusal ([`AuthRefusal`]), and the
//! typed outcomes the machine reports when an answer cannot be used
//! ([`KeyError`]) or a sealed send cannot go out ([`NotSentReason`]).

use std::time::Duration;

use crate::crypto::{CryptoError, Key};
use crate::doc::DocClientError;

use super::machine::CommandError;

/// A key the machine needs from the app ([`Event::NeedKey`]); answer with
/// [`ClientMachine::handle_key`], passing the request back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRequest {
    /// Key id.
    pub kid: String,
    /// The version an envelope names; `None` asks for the current one (to
    /// seal with).
    pub kv: Option<u32>,
    /// The document, for document keys.
    pub doc_id: Option<String>,
    /// The document session's key hint, as the server recorded it: `None`
    /// for a new document (the provider issues a new session key and
    /// returns its hint in [`KeyGrant::key_hint`]), else the hint that
    /// names the session's key (docs/keys.md).
    pub key_hint: Option<String>,
}

/// A key the app hands out.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    /// Its version.
    pub kv: u32,
    /// The key.
    pub key: Key,
    /// For a new document session key (a request with `doc_id` and no
    /// `key_hint`): its hint, which the server records for the document
    /// so every other client asks for the same key (`None`: the empty
    /// hint). Ignored otherwise.
    pub key_hint: Option<String>,
}

impl KeyGrant {
    /// A grant without key hint.
    pub fn new(kv: u32, key: Key) -> KeyGrant {
        KeyGrant { kv, key, key_hint: None }
    }
}

/// Why the app's key provider handed out no key (the answer to
/// [`Event::NeedKey`](super::Event::NeedKey) through
/// [`ClientMachine::handle_key`](super::ClientMachine::handle_key)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    /// No such key or version, or this user may not read it (caused by:
    /// the app's policy). Final: what waited for it is reported
    /// (undecryptable, not sent, the op skipped, the document closed for
    /// its session key) and it is not asked for again within
    /// `key_retry_after`.
    #[error("refused: {0}")]
    Refused(String),
    /// The provider cannot answer now: its key server is unreachable,
    /// offline, failing (caused by: environment). Not final: the machine
    /// treats the request as unanswered, so what waits for the key goes on
    /// waiting until `key_timeout` (a document then asks again) and no op
    /// is skipped because of a passing outage (docs/keys.md).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Why the app's authorizer did not sign a channel (the answer to
/// [`Event::NeedAuthorization`](super::Event::NeedAuthorization)); the
/// subscription fails with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authorizer failed: {reason}")]
pub struct AuthRefusal {
    /// What the authorizer said (caused by: the app's policy or its
    /// backend).
    pub reason: String,
}

impl AuthRefusal {
    /// A refusal for `reason`.
    pub fn new(reason: impl Into<String>) -> AuthRefusal {
        AuthRefusal { reason: reason.into() }
    }
}

/// Why a key request ended without a usable key
/// ([`Event::KeyRefused`](super::Event::KeyRefused)).
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
/// ([`Event::NotSent`](super::Event::NotSent)).
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
