//! The app's answers to the machine's requests, and how they fail: an
//! authorizer's refusal ([`AuthRefusal`]), and the typed outcomes the
//! machine reports when a key answer cannot be used ([`KeyError`]) or a
//! sealed send cannot go out ([`NotSentReason`]). What a key request asks
//! and gets lives with the key owner ([`crate::keys`]).

use std::time::Duration;

use crate::crypto::CryptoError;
use crate::doc::DocClientError;
use crate::keys::KeyRefusal;

use super::machine::CommandError;

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
