//! What a document client says to the app: its tuning ([`DocConfig`]),
//! its events ([`DocClientEvent`], [`DivergeReason`]) and why a call was
//! refused ([`DocClientError`]).

use std::time::Duration;

use super::versions::VersionError;
use crate::crypto::CryptoError;
use crate::ot::session::SessionError;
use crate::ot::{Delta, OtError};
use crate::protocol::doc::DocErrorCode;

/// Tuning of a [`DocClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocConfig {
    /// The author of every op whose sequence number is a multiple of this
    /// uploads a snapshot (joiners then replay at most about this many ops).
    pub snapshot_every: u64,
    /// Every client computes a digest at multiples of this; the author of
    /// that op publishes it and the others compare.
    pub digest_every: u64,
    /// After an op is submitted the next waits at least this long; what
    /// the user types meanwhile is composed into it (one op). Keeps a fast
    /// typist (60 keystrokes/s) under the server's per-connection op rate
    /// (`doc_ops_per_second`, 50) instead of meeting its refusals, at the
    /// cost of up to this much latency for a keystroke typed right after
    /// another. Zero: each op as soon as the previous one is acknowledged.
    pub submit_interval: std::time::Duration,
}

/// [`DocConfig::submit_interval`]'s default: at most 40 ops per second
/// per document.
pub const SUBMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

impl Default for DocConfig {
    fn default() -> DocConfig {
        DocConfig { snapshot_every: 500, digest_every: 100, submit_interval: SUBMIT_INTERVAL }
    }
}

/// What the app (editor) must hear about. Not `#[non_exhaustive]`: every
/// binding matches each variant (see [`crate::client::Event`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DocClientEvent {
    /// A new session: show `view` (replace the editor's content); the
    /// editor is at `version` from now on. Sent on the first join, on a
    /// reload (history compacted past this client, `restart`), and when the
    /// view had to be replaced (our own op refused for good or skipped). A
    /// rejoin after a reconnect that continues the session sends no
    /// `Ready`: the ops it caught up on arrive as `RemoteChange`s. `unsent`
    /// holds local changes that could not be carried into the new session
    /// (the history they were based on is gone); offer them to the user,
    /// nothing is dropped silently.
    Ready {
        /// The document including this user's pending edits.
        view: Delta,
        /// The last sequence number integrated.
        seq: u64,
        /// Local changes not carried over, against the previous view.
        unsent: Option<Delta>,
        /// The version of `view` (see [`DocClient::edit_at`](super::DocClient::edit_at)).
        version: u64,
    },
    /// A change the editor did not make itself: another user's op, an
    /// undo or redo, or the catch-up after an edit at an older version.
    /// Apply it when the editor is at `base` (it is then at `version`);
    /// ignore it otherwise: an edit at an older version was caught up by a
    /// later `RemoteChange` that replaces it (docs/ot.md).
    RemoteChange {
        /// The change, against the document at version `base`.
        change: Delta,
        /// The version it applies to.
        base: u64,
        /// The version it produces.
        version: u64,
    },
    /// A sequenced op did not apply to the document at its sequence number
    /// (buggy or malicious author, or an undecryptable payload). Every
    /// client skips it the same way, so the document goes on; digests still
    /// catch any real disagreement.
    Skipped {
        /// Its sequence number.
        seq: u64,
        /// Its op id (the author's client prefix).
        op_id: String,
        /// The author's user id, when the server knows it.
        user_id: Option<String>,
        /// Why it does not apply.
        reason: SkipReason,
    },
    /// Another user's cursor, moved into this client's view.
    Cursor {
        /// The sender's user id (presence channels), if known.
        user_id: Option<String>,
        /// Selection start.
        index: usize,
        /// Selection length.
        length: usize,
    },
    /// Another user's cursor could not be opened (it is ignored).
    CursorError {
        /// The sender's user id, if known.
        user_id: Option<String>,
        /// Why.
        error: String,
    },
    /// The ring lacks a key: the one an envelope names, or (`kv: None`)
    /// the document session's key to seal with. Call
    /// [`DocClient::add_key`](super::DocClient::add_key); processing waits for it (nothing is
    /// dropped), or [`DocClient::key_refused`](super::DocClient::key_refused) when the app has no such
    /// version (the op that named it is skipped). The client machine
    /// answers these itself through the app's key provider, and passes
    /// this event on only for a refused session key.
    KeyNeeded {
        /// Key id.
        kid: String,
        /// Key version; `None`: the session key's current version.
        kv: Option<u32>,
        /// The document session's key hint: the one the server recorded
        /// (or, for a document from before hints were recorded, its
        /// snapshot's). `None` on a new document: the provider issues a
        /// new session key and returns its hint with it.
        key_hint: Option<String>,
    },
    /// The session stopped: local input is refused from now on. `unsent`
    /// holds the user's unacknowledged changes; [`DocClient::restart`](super::DocClient::restart)
    /// reloads the document.
    Diverged {
        /// The sequence number where it was noticed.
        seq: u64,
        /// Why.
        reason: DivergeReason,
        /// Local changes not acknowledged by the server.
        unsent: Option<Delta>,
    },
    /// The server refused something. What happens next is in
    /// `retry_in`: a refused op is resubmitted automatically after that
    /// wait (`rate_limited`, `storage`), or, when it can never be accepted
    /// (`too_large`, `invalid`), dropped with every pending edit, which a
    /// following `Ready` carries as `unsent`.
    Refused {
        /// The server's error code.
        code: DocErrorCode,
        /// Its message.
        message: String,
        /// When the op is resubmitted, if it is.
        retry_in: Option<Duration>,
    },
}

/// Why a sequenced op was skipped (by every client alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// It names a key version the app refused (caused by: the author's
    /// keys, or a made-up version).
    #[error("sealed under key {kid} v{kv}, which the app refused")]
    KeyRefused {
        /// Key id.
        kid: String,
        /// Key version.
        kv: u32,
    },
    /// Its payload does not open: malformed, tampered, or sealed for
    /// another document or position (caused by: the author or a peer).
    #[error("cannot be opened: {0}")]
    Unreadable(String),
    /// Its op id was sequenced before (a replay, which must not apply
    /// twice).
    #[error("an op id was sequenced twice (replayed op)")]
    Replayed,
    /// It opened but does not fit the document at its base (caused by: a
    /// buggy or malicious author; for our own op, the view is reset).
    #[error("does not apply: {0}")]
    DoesNotApply(OtError),
}

impl SkipReason {
    /// A stable code for the bindings: `key_refused`, `unreadable`,
    /// `replayed`, `does_not_apply`.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::KeyRefused { .. } => "key_refused",
            SkipReason::Unreadable(_) => "unreadable",
            SkipReason::Replayed => "replayed",
            SkipReason::DoesNotApply(_) => "does_not_apply",
        }
    }
}

/// Why a session stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DivergeReason {
    /// Another client's digest at the same sequence differs from ours.
    DigestMismatch,
    /// A remote op, snapshot or server message could not be used
    /// (undecryptable, malformed, or not applicable).
    BadRemote(String),
    /// A local op could not be sealed (e.g. the key reached its usage
    /// limit): rotate the key, then restart.
    CannotSeal(String),
}

/// `digest_mismatch`, `bad_remote: WHY`, `cannot_seal: WHY`: a stable code
/// first, for the bindings' string form.
impl std::fmt::Display for DivergeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DivergeReason::DigestMismatch => f.write_str("digest_mismatch"),
            DivergeReason::BadRemote(why) => write!(f, "bad_remote: {why}"),
            DivergeReason::CannotSeal(why) => write!(f, "cannot_seal: {why}"),
        }
    }
}

/// Why a call was refused.
#[derive(Debug, thiserror::Error)]
pub enum DocClientError {
    /// Not joined yet (caused by: caller).
    #[error("the document is not joined yet")]
    NotReady,
    /// The session diverged; call `restart` (caused by: divergence).
    #[error("the document session stopped after divergence: restart it")]
    Diverged,
    /// The local change does not fit the view (caused by: caller).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The edit names a version the client no longer knows, or does not
    /// fit it (caused by: caller).
    #[error(transparent)]
    Version(#[from] VersionError),
    /// Sealing failed, e.g. no key for the kid (caused by: caller's keys).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A frame from the server is malformed (caused by: peer).
    #[error("malformed document frame: {0}")]
    Malformed(&'static str),
}
