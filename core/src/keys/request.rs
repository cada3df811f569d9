//! What a key request asks ([`KeyRequest`]) and what the app answers: a
//! [`KeyGrant`] or a [`KeyRefusal`].

use crate::crypto::Key;

/// A key the machine needs from the app
/// ([`Event::NeedKey`](crate::client::Event::NeedKey)); answer with
/// [`ClientMachine::handle_key`](crate::client::ClientMachine::handle_key),
/// passing the request back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
/// [`Event::NeedKey`](crate::client::Event::NeedKey) through
/// [`ClientMachine::handle_key`](crate::client::ClientMachine::handle_key)).
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
