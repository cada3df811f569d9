//! [`DocClient`]: one end-to-end-encrypted document over the sealcast
//! document channel protocol (`docs/protocol.md`), sans-IO.
//!
//! It wraps a [`DocSession`] (the OT state) with what the wire needs:
//! sealing and opening every op, snapshot and cursor with the document
//! scope; joining, paging and rejoining; snapshots every
//! [`DocConfig::snapshot_every`] ops; digests every
//! [`DocConfig::digest_every`] ops and the `Diverged` stop; keys asked for
//! when an envelope names one the ring lacks, and the session key (the one
//! to seal with) settled with the server: the document's recorded key hint
//! names it, and on a new document the first client's claim records it
//! (docs/keys.md, "The document session key").
//!
//! The transport subscribes to the channel, then feeds every frame on it to
//! [`DocClient::handle_event`] and sends whatever [`DocClient::poll_transmit`]
//! returns; the app reads [`DocClient::poll_event`].

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use crate::time::Instant;

use serde_json::Value;

use super::payload::{self, PayloadError};
use super::versions::{VersionError, ViewVersions};
use crate::crypto::{CryptoError, Key, KeyRing};
use crate::ot::Delta;
use crate::ot::session::{DocEvent as SessionEvent, DocSession, Integrated, SessionError};
use crate::protocol::doc::{self, DocErrorCode, DocMessage, DocProtocolError, DocReply, DocRequest};

/// Own and reported digests remembered, per direction.
const DIGESTS_KEPT: usize = 64;
/// Server messages held while waiting for a key before the session gives
/// up (the app never supplied it): bounds the memory a missing key costs.
const HELD_MAX: usize = 10_000;
/// Op ids remembered to catch a replayed op (a sequencer never sequences
/// one op id twice).
const OP_IDS_KEPT: usize = 10_000;
/// Key versions the app refused that a client remembers. One forgotten
/// is only asked for again (and refused again) if an op names it again.
const REFUSED_KEYS_KEPT: usize = 256;
/// First wait before resubmitting an op the server refused for now
/// (`rate_limited`, `storage`); doubled per refusal up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between resubmissions.
pub const RETRY_MAX: Duration = Duration::from_secs(5);
/// Presence client event carrying sealed cursors.
pub const CURSOR_EVENT: &str = doc::CURSOR;

/// Tuning of a [`DocClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocConfig {
    /// The author of every op whose sequence number is a multiple of this
    /// uploads a snapshot (joiners then replay at most about this many ops).
    pub snapshot_every: u64,
    /// Every client computes a digest at multiples of this; the author of
    /// that op publishes it and the others compare.
    pub digest_every: u64,
}

impl Default for DocConfig {
    fn default() -> DocConfig {
        DocConfig { snapshot_every: 500, digest_every: 100 }
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
        /// The version of `view` (see [`DocClient::edit_at`]).
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
        reason: String,
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
    /// [`DocClient::add_key`]; processing waits for it (nothing is
    /// dropped), or [`DocClient::key_refused`] when the app has no such
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
    /// holds the user's unacknowledged changes; [`DocClient::restart`]
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

/// The wire messages this client reads (`protocol::doc`).
type WireOp = doc::SequencedOp;
type WireState = doc::JoinState;

/// A server message waiting to be processed (in order).
#[derive(Debug, Clone)]
enum Incoming {
    State(WireState),
    Op(WireOp),
    Ack { op_id: String, seq: u64 },
    Digest { seq: u64, kv: u32, digest: String },
    Cursor { user_id: Option<String>, seq: u64, envelope: Value },
}

/// Where the client is, with the document session each phase owns.
#[derive(Debug)]
enum Phase {
    /// Not joined: new, or restarted after divergence.
    Idle,
    /// Waiting for `doc-state`; `since` is what was asked. A rejoin (or the
    /// next page of a join) continues `session`; a join from a snapshot
    /// has none yet.
    Joining { since: Option<u64>, session: Option<DocSession> },
    /// Joined: live ops apply to `session`.
    Ready { session: DocSession },
    /// Stopped for good (until `restart`); the session stays readable.
    Diverged { session: Option<DocSession> },
}

impl Phase {
    fn session(&self) -> Option<&DocSession> {
        match self {
            Phase::Idle => None,
            Phase::Ready { session } => Some(session),
            Phase::Joining { session, .. } | Phase::Diverged { session } => session.as_ref(),
        }
    }

    fn session_mut(&mut self) -> Option<&mut DocSession> {
        match self {
            Phase::Idle => None,
            Phase::Ready { session } => Some(session),
            Phase::Joining { session, .. } | Phase::Diverged { session } => session.as_mut(),
        }
    }

    /// Moves the session out, leaving `Idle` (the caller sets the next phase).
    fn take_session(&mut self) -> Option<DocSession> {
        match std::mem::replace(self, Phase::Idle) {
            Phase::Idle => None,
            Phase::Ready { session } => Some(session),
            Phase::Joining { session, .. } | Phase::Diverged { session } => session,
        }
    }

    fn is_ready(&self) -> bool {
        matches!(self, Phase::Ready { .. })
    }

    fn is_diverged(&self) -> bool {
        matches!(self, Phase::Diverged { .. })
    }

    /// What a join in progress asked for.
    fn joining_since(&self) -> Option<Option<u64>> {
        match self {
            Phase::Joining { since, .. } => Some(*since),
            _ => None,
        }
    }
}

/// One client's encrypted document.
#[derive(Debug)]
pub struct DocClient {
    doc_id: String,
    channel: String,
    config: DocConfig,
    ring: KeyRing,
    kid: String,
    /// The hint of the session key this client seals with, when known:
    /// claimed in every join, stored with snapshots.
    key_hint: Option<String>,
    /// The last join carried a claim (we had a key to seal with and knew
    /// its hint).
    claimed: bool,
    phase: Phase,
    /// The session being replaced by a join from a snapshot: its pending
    /// changes become `unsent`.
    abandoned: Option<DocSession>,
    /// The in-flight op of the abandoned session was sequenced (as this).
    abandoned_op_seq: Option<u64>,
    /// Prefix making this client's op ids unique.
    op_id_prefix: String,
    /// Random per client: op ids are `{prefix}-{HMAC(secret, n)}`, so
    /// nobody who saw this client's earlier op ids can predict the next one
    /// and take it first (issue 11, item 6).
    op_id_secret: [u8; 32],
    /// Sessions started: op ids of session `g` start at `g << 32`.
    generation: u64,
    inbox: VecDeque<Incoming>,
    /// Live ops and acks that arrived while joining.
    early: Vec<Incoming>,
    /// Keys already asked for (asked once each; `None`: the session key).
    asked: HashSet<(String, Option<u32>)>,
    /// Key versions the app refused, newest last (at most
    /// [`REFUSED_KEYS_KEPT`]): ops naming one are skipped, snapshots under
    /// one passed over, instead of waiting for ever.
    refused: VecDeque<(String, u32)>,
    /// The joined document's session key hint (the recorded one, else its
    /// snapshot's), passed with every key request.
    doc_key_hint: Option<String>,
    /// Our digests by sequence, `(kv, digest)`.
    own_digests: BTreeMap<u64, (u32, String)>,
    /// Others' digests for sequences not reached yet.
    their_digests: BTreeMap<u64, (u32, String)>,
    /// A snapshot upload was refused as stale: retry at our next ack.
    snapshot_retry: bool,
    /// Kept snapshots that did not open in this join (garbage from a
    /// co-subscriber without the key, say): the next join asks for an
    /// older one; 0 means "no snapshot, replay from the start".
    bad_snapshots: HashSet<u64>,
    /// This join started a new session (from a snapshot or the start): the
    /// editor gets a `Ready` that replaces its content. A rejoin that
    /// continues the session instead delivers the ops it catches up on as
    /// `RemoteChange`s, so the editor's versions stay valid and an edit
    /// made meanwhile is not lost.
    fresh_join: bool,
    /// Op ids integrated in this session, oldest first (bounded).
    seen_op_ids: VecDeque<String>,
    seen_op_id_set: HashSet<String>,
    /// The versions of the view the app may be editing at.
    versions: ViewVersions,
    /// The op id last refused as `conflict` (answered by a rejoin first).
    conflicted: Option<String>,
    /// Refusals of the in-flight op in a row, and when to resubmit it.
    retries: u32,
    retry_at: Option<Instant>,
    outgoing: VecDeque<DocMessage>,
    events: VecDeque<DocClientEvent>,
}

impl DocClient {
    /// A client for document `doc_id` on `private-doc-{doc_id}` (or
    /// `presence-doc-{doc_id}` when `presence`), sealing with the current
    /// version of `kid` in `ring`. A ring without `kid` is fine: the join
    /// learns the document's session key hint and `KeyNeeded` asks for the
    /// key. `key_hint` is the hint of the key in `ring`, when the app knows
    /// it: claimed for a new document, and a different recorded hint
    /// replaces that key (docs/keys.md). `op_id_prefix` should be unique
    /// per client session (e.g. random); op ids are `{prefix}-{n}`.
    pub fn new(
        doc_id: &str,
        presence: bool,
        ring: KeyRing,
        kid: &str,
        key_hint: Option<String>,
        op_id_prefix: &str,
        config: DocConfig,
    ) -> Result<DocClient, DocClientError> {
        check_key_hint(key_hint.as_deref())?;
        if config.snapshot_every == 0 || config.digest_every == 0 {
            return Err(DocClientError::Malformed("snapshot_every and digest_every must be positive"));
        }
        Ok(DocClient {
            doc_id: doc_id.to_owned(),
            channel: doc::channel_for(doc_id, presence),
            config,
            ring,
            kid: kid.to_owned(),
            key_hint,
            claimed: false,
            phase: Phase::Idle,
            abandoned: None,
            abandoned_op_seq: None,
            op_id_prefix: op_id_prefix.to_owned(),
            op_id_secret: {
                let mut secret = [0u8; 32];
                crate::crypto::rng::fill(&mut crate::crypto::rng::OsRng, &mut secret)?;
                secret
            },
            generation: 0,
            inbox: VecDeque::new(),
            early: Vec::new(),
            asked: HashSet::new(),
            refused: VecDeque::new(),
            doc_key_hint: None,
            own_digests: BTreeMap::new(),
            their_digests: BTreeMap::new(),
            snapshot_retry: false,
            bad_snapshots: HashSet::new(),
            fresh_join: false,
            seen_op_ids: VecDeque::new(),
            seen_op_id_set: HashSet::new(),
            versions: ViewVersions::default(),
            conflicted: None,
            retries: 0,
            retry_at: None,
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The channel to subscribe to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// True once joined and not diverged.
    pub fn is_ready(&self) -> bool {
        self.phase.is_ready()
    }

    /// The last sequence number integrated (0 before joining).
    pub fn seq(&self) -> u64 {
        self.phase.session().map_or(0, DocSession::seq)
    }

    /// The document as the user sees it.
    pub fn view(&self) -> Result<Delta, DocClientError> {
        Ok(self.phase.session().ok_or(DocClientError::NotReady)?.view()?)
    }

    /// The version of the view (of the newest `Ready` or `RemoteChange`
    /// emitted, or returned by an edit).
    pub fn version(&self) -> u64 {
        self.versions.head()
    }

    /// The document as the user sees it, and its version: an app that
    /// renders this may edit at that version ([`DocClient::edit_at`]).
    pub fn versioned_view(&self) -> Result<(Delta, u64), DocClientError> {
        Ok((self.view()?, self.versions.head()))
    }

    /// The canonical document at [`DocClient::seq`].
    pub fn canonical(&self) -> Option<&Delta> {
        self.phase.session().map(DocSession::canonical)
    }

    /// True while local edits await acknowledgement.
    pub fn has_pending(&self) -> bool {
        self.phase.session().is_some_and(DocSession::has_pending)
    }

    /// Joins (after subscribing), or rejoins after a reconnect: with a
    /// session, only the ops after it are fetched and pending edits are
    /// resubmitted under their op ids; otherwise from the newest snapshot.
    pub fn join(&mut self) {
        if self.phase.is_diverged() {
            return;
        }
        let since = self.phase.session().map(DocSession::seq);
        self.send_join(since);
    }

    /// After divergence: drops the session and reloads the document from
    /// the server. The abandoned session's pending changes were already
    /// reported in the `Diverged` event.
    pub fn restart(&mut self) {
        self.bad_snapshots.clear();
        // A refusal may have been a passing failure (docs/keys.md): a
        // restart asks the app again.
        self.refused.clear();
        self.abandoned = None;
        self.own_digests.clear();
        self.their_digests.clear();
        self.inbox.clear();
        self.early.clear();
        self.phase = Phase::Idle;
        self.send_join(None);
    }

    /// A change the user made to the SDK's current view (the newest
    /// `Ready`/`RemoteChange` version). Returns the version the view is at
    /// now. An editor that applies changes asynchronously should use
    /// [`DocClient::edit_at`] instead.
    pub fn local_edit(&mut self, change: Delta) -> Result<u64, DocClientError> {
        let version = self.versions.head();
        self.edit_at(version, change)
    }

    /// A change the user made to the view at `version` (the version of the
    /// last `Ready` or `RemoteChange` the editor applied). When the SDK's
    /// view moved on meanwhile, the change is transformed through what the
    /// editor has not applied yet, and a `RemoteChange` based on the
    /// returned version brings the editor up to date; the changes still
    /// queued for it are then superseded (their base no longer matches).
    /// Returns the version the editor is at after its own change.
    pub fn edit_at(&mut self, version: u64, change: Delta) -> Result<u64, DocClientError> {
        self.session_for_input()?;
        let rebased = self.versions.rebase(version, change)?;
        let session = self.session_for_input()?;
        session.local_edit(rebased.edit.clone())?;
        let (now, catch_up) = self.versions.edited(rebased);
        if let Some((base, version, change)) = catch_up {
            self.events.push_back(DocClientEvent::RemoteChange { change, base, version });
        }
        self.flush_submissions();
        Ok(now)
    }

    /// Undoes the user's newest change (transformed past remote edits).
    /// The change for the editor arrives as a `RemoteChange`, in order with
    /// the others. Returns false when there is nothing to undo.
    pub fn undo(&mut self) -> Result<bool, DocClientError> {
        let change = self.session_for_input()?.undo()?;
        Ok(self.editor_change(change))
    }

    /// Redoes the newest undone change, like [`DocClient::undo`].
    pub fn redo(&mut self) -> Result<bool, DocClientError> {
        let change = self.session_for_input()?.redo()?;
        Ok(self.editor_change(change))
    }

    /// Sends the in-flight op again now, under the same op id, or the join
    /// the server refused for now (refusals are retried automatically;
    /// this skips the wait).
    pub fn resubmit(&mut self) {
        self.retry_at = None;
        if let Some(since) = self.phase.joining_since() {
            return self.send_join(since);
        }
        if self.phase.is_ready()
            && let Some(session) = self.phase.session_mut()
        {
            session.resubmit();
            self.flush_submissions();
        }
    }

    /// When [`DocClient::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Time passed: resubmits a refused op whose wait is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|at| at <= now) {
            self.resubmit();
        }
    }

    /// A frame sharing this user's selection, as a presence client event.
    pub fn cursor(&mut self, index: usize, length: usize) -> Result<(), DocClientError> {
        let seq = self.phase.session().ok_or(DocClientError::NotReady)?.seq();
        let envelope = payload::seal_cursor(&mut self.ring, &self.kid, &self.doc_id, seq, index, length)?;
        self.outgoing.push_back(doc::CursorUpdate { seq, cursor: envelope }.message());
        Ok(())
    }

    /// Forgets that `(kid, kv)` was asked for (`kv` `None`: the session
    /// key) because the app never answered: if processing still stops at
    /// it, `KeyNeeded` comes again.
    pub fn ask_again(&mut self, kid: &str, kv: Option<u32>) {
        if self.asked.remove(&(kid.to_owned(), kv)) {
            self.process();
        }
    }

    /// The app refused key version `kv` of `kid` (after `KeyNeeded`): the
    /// op waiting for it is skipped, as every client of the app is refused
    /// the same key (docs/ot.md, "Ops that do not apply"); a snapshot under
    /// it is passed over. Processing resumes. An op naming a made-up key
    /// version so cannot stop the document.
    pub fn key_refused(&mut self, kid: &str, kv: u32) {
        self.asked.remove(&(kid.to_owned(), Some(kv)));
        if !self.is_refused(kid, kv) {
            if self.refused.len() >= REFUSED_KEYS_KEPT {
                self.refused.pop_front();
            }
            self.refused.push_back((kid.to_owned(), kv));
        }
        self.process();
    }

    fn is_refused(&self, kid: &str, kv: u32) -> bool {
        self.refused.iter().any(|(k, v)| k == kid && *v == kv)
    }

    /// Adds a key the app fetched after `KeyNeeded`; processing resumes.
    /// `key_hint` is the hint the provider returned with a new session key
    /// (the answer to a `KeyNeeded` without hint); it is claimed for the
    /// document (`None`: the empty hint). It is ignored for other keys.
    pub fn add_key(
        &mut self,
        kid: &str,
        kv: u32,
        key: Key,
        key_hint: Option<String>,
    ) -> Result<(), DocClientError> {
        check_key_hint(key_hint.as_deref())?;
        let session_key = kid == self.kid && self.ring.current_version(kid).is_none();
        self.ring.insert(kid, kv, key)?;
        if session_key {
            self.asked.remove(&(kid.to_owned(), None));
            if self.key_hint.is_none() {
                self.key_hint = Some(key_hint.unwrap_or_default());
            }
        }
        self.process();
        Ok(())
    }

    /// A server frame on [`DocClient::channel`]: its event name, its `data`
    /// (parsed), the sender's user id for client events, and the time it
    /// arrived.
    pub fn handle_event(
        &mut self,
        event: &str,
        data: &Value,
        user_id: Option<&str>,
        now: Instant,
    ) -> Result<(), DocClientError> {
        let incoming = match event {
            doc::CURSOR => {
                let cursor = doc::CursorUpdate::parse(data).map_err(|e| match e {
                    DocProtocolError::Shape(message) => DocClientError::Malformed(message),
                    DocProtocolError::NotDocument => DocClientError::Malformed("not a cursor"),
                })?;
                Incoming::Cursor {
                    user_id: user_id.map(str::to_owned),
                    seq: cursor.seq,
                    envelope: cursor.cursor,
                }
            }
            _ => match DocReply::parse(event, data) {
                Err(DocProtocolError::NotDocument) => return Ok(()),
                Err(DocProtocolError::Shape(message)) => return Err(DocClientError::Malformed(message)),
                Ok(DocReply::State(state)) => Incoming::State(state),
                Ok(DocReply::Op(op)) => Incoming::Op(op),
                Ok(DocReply::Ack(ack)) => Incoming::Ack { op_id: ack.op_id, seq: ack.seq },
                Ok(DocReply::Digest(digest)) => {
                    Incoming::Digest { seq: digest.seq, kv: digest.kv, digest: digest.digest }
                }
                Ok(DocReply::SnapshotStored(_)) => {
                    self.snapshot_retry = false;
                    return Ok(());
                }
                Ok(DocReply::Error(error)) => {
                    self.handle_error(&error, now);
                    return Ok(());
                }
            },
        };
        if self.phase.is_diverged() {
            return Ok(());
        }
        if self.inbox.len() >= HELD_MAX {
            self.diverge(DivergeReason::BadRemote(format!(
                "{HELD_MAX} messages held waiting for a key that never came"
            )));
            return Ok(());
        }
        self.inbox.push_back(incoming);
        self.process();
        Ok(())
    }

    /// The next message to send on [`DocClient::channel`] (encode it with
    /// [`DocMessage::encode`] for a raw WebSocket).
    pub fn poll_transmit(&mut self) -> Option<DocMessage> {
        self.outgoing.pop_front()
    }

    /// The next event for the app.
    pub fn poll_event(&mut self) -> Option<DocClientEvent> {
        self.events.pop_front()
    }

    fn session_for_input(&mut self) -> Result<&mut DocSession, DocClientError> {
        match &mut self.phase {
            Phase::Diverged { .. } => Err(DocClientError::Diverged),
            phase => phase.session_mut().ok_or(DocClientError::NotReady),
        }
    }

    fn joining(&self) -> bool {
        self.phase.joining_since().is_some()
    }

    fn send_join(&mut self, since: Option<u64>) {
        self.send_join_from(since, None);
    }

    /// A join, from the kept snapshot at `snapshot` when given.
    fn send_join_from(&mut self, since: Option<u64>, snapshot: Option<u64>) {
        // Ask whether our in-flight op was sequenced, in case the history
        // after `since` is gone.
        let op_id = self.in_flight_op_id();
        let session = self.phase.take_session();
        self.phase = Phase::Joining { since, session };
        // With a key to seal with whose hint we know, claim it: recorded
        // if the document is new; the answer names the session either way.
        let key_hint = self.key_hint.clone().filter(|_| self.has_session_key());
        self.claimed = key_hint.is_some();
        self.push_request(DocRequest::Join(doc::Join { since, op_id, snapshot, key_hint }));
    }

    fn handle_error(&mut self, error: &doc::DocError, now: Instant) {
        let (code, message) = (error.code.clone(), error.message.clone());
        let ours = self.phase.is_ready()
            && error.op_id.as_deref().is_some_and(|id| self.in_flight_op_id().as_deref() == Some(id));
        // A submit refusal is about one op id. Not the one in flight (an
        // earlier copy of an op acknowledged since, an id renumbered after
        // a conflict, or any op while a join is in progress, which
        // resubmits it when ready) it asks nothing of us or the app.
        if error.op_id.is_some() && !ours {
            return;
        }
        let mut retry_in = None;
        match code {
            // Our op's base fell behind the floor: catch up, then resend.
            DocErrorCode::Resync if self.phase.is_ready() => {
                self.join();
                return;
            }
            // A newer snapshot will do; retry at our next ack. A refusal
            // for rate without an op id is a snapshot or a digest (joins
            // are handled below): the snapshot is retried the same way, a
            // digest is only a check and the next one will do.
            DocErrorCode::StaleSnapshot => {
                self.snapshot_retry = true;
                return;
            }
            // A snapshot refused for now is retried at a later ack; a
            // refused digest is only a check (the next one will do).
            // Servers name the request; older ones are told apart by having
            // no op id outside a join.
            _ if code.is_transient()
                && match error.request.as_deref() {
                    Some(request) => request == doc::SNAPSHOT || request == doc::DIGEST,
                    None => error.op_id.is_none() && !self.joining(),
                } =>
            {
                self.snapshot_retry = true;
                return;
            }
            // The server holds an op under our op id but does not count us
            // as its author. It may be ours after all (sequenced before a
            // reconnect under another identity, e.g. not signed in yet):
            // a rejoin finds it among the ops since our sequence number and
            // takes it as the ack. Only if the id conflicts again is it
            // someone else's (our ids are unguessable, so only a bug or a
            // leak): then ours was never sequenced and goes under a fresh id.
            DocErrorCode::Conflict if ours => {
                let op_id = error.op_id.clone();
                if self.conflicted.is_some() && self.conflicted == op_id {
                    self.conflicted = None;
                    if let Some(session) = self.phase.session_mut() {
                        session.renumber_in_flight();
                    }
                    self.flush_submissions();
                } else {
                    self.conflicted = op_id;
                    self.join();
                }
                return;
            }
            // Not now: the same op id (or the same join) again after a
            // growing wait.
            _ if code.is_transient() && (ours || self.joining()) => {
                let wait = RETRY_FIRST.saturating_mul(1 << self.retries.min(6)).min(RETRY_MAX);
                self.retries = self.retries.saturating_add(1);
                self.retry_at = Some(now + wait);
                retry_in = Some(wait);
            }
            // Never: drop the pending edits, hand them back as `unsent`.
            _ if ours => {
                self.events.push_back(DocClientEvent::Refused { code, message, retry_in });
                let unsent = self.phase.session_mut().and_then(|s| s.take_pending().ok().flatten());
                self.reset_view(unsent);
                return;
            }
            _ => {}
        }
        self.events.push_back(DocClientEvent::Refused { code, message, retry_in });
    }

    /// Tells the editor to replace its content with the view (a new
    /// version), offering `unsent`.
    fn reset_view(&mut self, unsent: Option<Delta>) {
        let Some(session) = self.phase.session() else { return };
        let (seq, version) = (session.seq(), self.versions.reset());
        match session.view() {
            Ok(view) => self.events.push_back(DocClientEvent::Ready { view, seq, unsent, version }),
            Err(err) => self.diverge(DivergeReason::BadRemote(err.to_string())),
        }
    }

    /// Queues the submissions an undo or redo made and its change for the
    /// editor; false when there was none.
    fn editor_change(&mut self, change: Option<Delta>) -> bool {
        self.flush_submissions();
        let Some(change) = change else { return false };
        let (base, version) = self.versions.advance(change.clone());
        self.events.push_back(DocClientEvent::RemoteChange { change, base, version });
        true
    }

    /// Works through the inbox in order; stops at a message whose key is
    /// missing (it stays queued).
    fn process(&mut self) {
        while let Some(incoming) = self.inbox.pop_front() {
            if self.phase.is_diverged() {
                self.inbox.clear();
                return;
            }
            match self.handle(&incoming) {
                Ok(()) => {}
                Err(Failure::NeedKey { kid, kv }) => {
                    self.inbox.push_front(incoming);
                    if self.asked.insert((kid.clone(), kv)) {
                        let key_hint = self.doc_key_hint.clone();
                        self.events.push_back(DocClientEvent::KeyNeeded { kid, kv, key_hint });
                    }
                    return;
                }
                Err(Failure::Diverge(reason)) => self.diverge(reason),
            }
        }
        self.flush_submissions();
    }

    fn handle(&mut self, incoming: &Incoming) -> Result<(), Failure> {
        let joining = self.phase.joining_since();
        match incoming {
            Incoming::State(state) => match joining {
                Some(since) => self.handle_state(state, since),
                None => Ok(()),
            },
            // Live traffic during a join: the state frame decides; keep
            // what comes after it.
            Incoming::Op(_) | Incoming::Ack { .. } if joining.is_some() => {
                self.early.push(incoming.clone());
                Ok(())
            }
            _ if !self.phase.is_ready() => Ok(()),
            Incoming::Op(op) => self.handle_op(op),
            Incoming::Ack { op_id, seq } => self.handle_ack(op_id, *seq),
            Incoming::Digest { seq, kv, digest } => self.handle_digest(*seq, *kv, digest.clone()),
            Incoming::Cursor { user_id, seq, envelope } => {
                self.handle_cursor(user_id.clone(), *seq, envelope)
            }
        }
    }
}

impl DocClient {
    fn has_session_key(&self) -> bool {
        self.ring.current_version(&self.kid).is_some()
    }

    /// Settles the key to seal with against the document's recorded
    /// session hint before a join state is used. `Ok(false)`: the state
    /// was answered by a new join (one that claims the hint of the key
    /// that just came); `NeedKey` holds the state until the key comes.
    fn settle_session_key(&mut self, state: &WireState, since: Option<u64>) -> Result<bool, Failure> {
        let snapshot_hint = state.snapshot.as_ref().and_then(|s| s.key_hint.clone());
        self.doc_key_hint = state.key_hint.clone().or(snapshot_hint);
        let need_key = Failure::NeedKey { kid: self.kid.clone(), kv: None };
        if !self.has_session_key() {
            // Ask for the recorded session's key; none recorded on a new
            // document: for the app's (if it named one) or a new session
            // key, claimed when it comes.
            match &self.doc_key_hint {
                Some(recorded) => self.key_hint = Some(recorded.clone()),
                None => self.doc_key_hint = self.key_hint.clone(),
            }
            return Err(need_key);
        }
        match (&state.key_hint, &self.key_hint) {
            // A new document, and the key came after this join was sent:
            // claim its hint now.
            (None, Some(_)) if state.head == 0 && !self.claimed => {
                self.send_join(since);
                Ok(false)
            }
            // Another session was recorded (another client's claim came
            // first, or the app's hint is stale): our key cannot talk to
            // the others. Ask for the recorded session's key instead.
            (Some(recorded), Some(ours)) if recorded != ours => {
                for kv in self.ring.versions(&self.kid) {
                    self.ring.remove_version(&self.kid, kv);
                }
                self.key_hint = Some(recorded.clone());
                Err(need_key)
            }
            _ => Ok(true),
        }
    }

    fn handle_state(&mut self, state: &WireState, since: Option<u64>) -> Result<(), Failure> {
        if !self.settle_session_key(state, since)? {
            return Ok(());
        }
        match (since, self.phase.session().is_some()) {
            (Some(since), true) => {
                if state.head < since {
                    return Err(bad_remote(
                        "the server's head is behind this client: acknowledged ops were lost",
                    ));
                }
                let contiguous = state.ops.first().map_or(state.head == since, |op| op.seq == since + 1);
                if !contiguous {
                    // The history after `since` was compacted: reload from
                    // the snapshot; pending edits become `unsent`.
                    self.abandoned_op_seq = state.op_seq;
                    self.abandoned = self.phase.take_session();
                    self.send_join(None);
                    return Ok(());
                }
            }
            _ => {
                // Asked for the whole history (no kept snapshot opened)?
                let from_start = since == Some(0) && self.bad_snapshots.contains(&0);
                let (document, seq) = match state.snapshot.as_ref().filter(|_| !from_start) {
                    None => (Delta::new(), 0),
                    Some(s) => {
                        let opened = if self.bad_snapshots.contains(&s.seq) {
                            Err(PayloadError::Malformed("a snapshot that did not open before"))
                        } else {
                            payload::open_snapshot(&self.ring, &self.doc_id, s.seq, &s.payload)
                        };
                        match opened {
                            Ok(document) => (document, s.seq),
                            Err(PayloadError::Crypto(CryptoError::UnknownKey { kid, kv }))
                                if !self.is_refused(&kid, kv) =>
                            {
                                return Err(Failure::NeedKey { kid, kv: Some(kv) });
                            }
                            // The server keeps snapshots from several uploaders
                            // because it cannot tell a good one from garbage:
                            // try the next older one, then the whole history.
                            Err(_) => {
                                self.bad_snapshots.insert(s.seq);
                                let older = state
                                    .snapshots
                                    .iter()
                                    .copied()
                                    .filter(|k| *k < s.seq && !self.bad_snapshots.contains(k))
                                    .max();
                                match older {
                                    Some(older) => self.send_join_from(None, Some(older)),
                                    None => {
                                        self.bad_snapshots.insert(0);
                                        self.send_join_from(Some(0), None);
                                    }
                                }
                                return Ok(());
                            }
                        }
                    }
                };
                if state.ops.first().is_some_and(|op| op.seq != seq + 1) {
                    return Err(bad_remote("the join state does not continue its snapshot"));
                }
                self.generation += 1;
                self.fresh_join = true;
                let session = DocSession::new(document, seq, self.generation << 32)?;
                self.phase = Phase::Joining { since, session: Some(session) };
                self.seen_op_ids.clear();
                self.seen_op_id_set.clear();
            }
        }
        for op in &state.ops {
            self.integrate_op(op, !self.fresh_join)?;
        }
        let seq = self.seq();
        // The server pages joins by op count and bytes: a page that ends
        // before the head is continued from where it ended.
        if !state.ops.is_empty() && seq < state.head {
            self.send_join(Some(seq));
            return Ok(());
        }
        self.become_ready()
    }

    fn become_ready(&mut self) -> Result<(), Failure> {
        let session = self.phase.take_session().ok_or_else(no_session)?;
        self.phase = Phase::Ready { session };
        self.bad_snapshots.clear();
        let unsent = match self.abandoned.take() {
            None => None,
            // Its in-flight op was sequenced: only the buffer is unsent.
            Some(old) if self.abandoned_op_seq.take().is_some() => old.buffered().cloned(),
            Some(old) => old.pending_changes()?,
        };
        let session = joined_mut(&mut self.phase)?;
        while session.poll_event().is_some() {}
        if std::mem::take(&mut self.fresh_join) || unsent.is_some() {
            let version = self.versions.reset();
            self.events.push_back(DocClientEvent::Ready {
                view: session.view()?,
                seq: session.seq(),
                unsent,
                version,
            });
        }
        for early in std::mem::take(&mut self.early) {
            self.handle(&early)?;
        }
        // The in-flight op goes out again now: a retry still timed from a
        // refusal before the join would send a second copy.
        self.retry_at = None;
        if let Some(session) = self.phase.session_mut() {
            session.resubmit();
        }
        Ok(())
    }

    fn handle_op(&mut self, op: &WireOp) -> Result<(), Failure> {
        let seq = self.seq();
        if op.seq <= seq {
            return Ok(()); // already integrated (join overlap)
        }
        if op.seq != seq + 1 {
            self.join(); // a gap: catch up
            return Ok(());
        }
        self.integrate_op(op, true)
    }

    /// Integrates sequenced op `op`: ours (an ack) or another client's.
    /// An op that cannot be opened or does not apply is skipped, as every
    /// client skips it (docs/ot.md, "Ops that do not apply"); only a
    /// missing key stops processing (until the key comes, or the app
    /// refuses it: [`DocClient::key_refused`]).
    fn integrate_op(&mut self, op: &WireOp, live: bool) -> Result<(), Failure> {
        if self.in_flight_op_id().as_deref() == Some(op.op_id.as_str()) {
            return self.handle_ack(&op.op_id, op.seq);
        }
        let opened = match payload::open_op(&self.ring, &self.doc_id, op.base, &op.op_id, &op.payload) {
            Err(PayloadError::Crypto(CryptoError::UnknownKey { kid, kv })) => {
                if !self.is_refused(&kid, kv) {
                    return Err(Failure::NeedKey { kid, kv: Some(kv) });
                }
                Err(format!("sealed under key {kid} v{kv}, which the app refused"))
            }
            opened => opened.map_err(|e| e.to_string()),
        };
        // A replayed op id (a sequencer never sequences one twice) is
        // skipped too rather than applied again.
        let opened = opened.and_then(|delta| self.remember_op_id(&op.op_id).map(|()| delta));
        let session = joined_mut(&mut self.phase)?;
        let outcome = match opened {
            Ok(delta) => session.handle_remote(op.seq, op.base, &delta)?,
            Err(reason) => {
                session.skip_remote(op.seq)?;
                self.report_skip(op, reason);
                return self.after_integrate(op.seq, false);
            }
        };
        if let Integrated::Skipped(err) = outcome {
            self.report_skip(op, err.to_string());
        }
        let session = joined_mut(&mut self.phase)?;
        let mut changes = Vec::new();
        while let Some(SessionEvent::RemoteChange(change)) = session.poll_event() {
            changes.push(change);
        }
        for change in changes {
            // A join replays ops into the view the `Ready` event shows.
            if live {
                let (base, version) = self.versions.advance(change.clone());
                self.events.push_back(DocClientEvent::RemoteChange { change, base, version });
            }
        }
        self.after_integrate(op.seq, false)
    }

    fn report_skip(&mut self, op: &WireOp, reason: String) {
        self.events.push_back(DocClientEvent::Skipped {
            seq: op.seq,
            op_id: op.op_id.clone(),
            user_id: op.user_id.clone(),
            reason,
        });
    }

    fn handle_ack(&mut self, op_id: &str, seq: u64) -> Result<(), Failure> {
        if self.in_flight_op_id().as_deref() != Some(op_id) {
            return Ok(()); // a duplicate ack of an op integrated on rejoin
        }
        let session = joined_mut(&mut self.phase)?;
        let Some(id) = session.in_flight_id() else { return Ok(()) };
        match session.handle_ack(id, seq) {
            Ok(Integrated::Applied | Integrated::Skipped(_)) => {
                self.retries = 0;
                self.retry_at = None;
                self.conflicted = None;
                self.remember_op_id(op_id).map_err(|reason| bad_remote(&reason))?;
                self.after_integrate(seq, true)
            }
            Ok(Integrated::SkippedOwn { error, unsent }) => {
                self.retries = 0;
                self.retry_at = None;
                let reason = error.to_string();
                let (op_id, user_id) = (op_id.to_owned(), None);
                self.events.push_back(DocClientEvent::Skipped { seq, op_id, user_id, reason });
                self.reset_view(unsent);
                self.after_integrate(seq, true)
            }
            Err(SessionError::OutOfOrder { .. }) => {
                self.join(); // ops before ours were missed: catch up
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Digests and snapshots at checkpoints.
    fn after_integrate(&mut self, seq: u64, authored: bool) -> Result<(), Failure> {
        let session = joined(&self.phase)?;
        if seq.is_multiple_of(self.config.digest_every)
            && let Some(kv) = self.ring.current_version(&self.kid)
            && let Some(key) = self.ring.get(&self.kid, kv)
        {
            let digest = payload::digest(key, &self.doc_id, seq, session.canonical());
            if authored && self.phase.is_ready() {
                self.push_request(DocRequest::Digest(doc::Digest { seq, kv, digest: digest.clone() }));
            }
            remember(&mut self.own_digests, seq, (kv, digest));
            if let Some((their_kv, theirs)) = self.their_digests.remove(&seq) {
                self.compare_digest(seq, their_kv, &theirs)?;
            }
        }
        if authored
            && self.phase.is_ready()
            && (seq.is_multiple_of(self.config.snapshot_every) || self.snapshot_retry)
        {
            self.snapshot_retry = false;
            let session = joined(&self.phase)?;
            let sealed =
                payload::seal_snapshot(&mut self.ring, &self.kid, &self.doc_id, seq, session.canonical())
                    .map_err(|e| Failure::Diverge(DivergeReason::CannotSeal(e.to_string())))?;
            let key_hint = self.key_hint.clone();
            self.push_request(DocRequest::Snapshot(doc::SnapshotUpload { seq, payload: sealed, key_hint }));
        }
        Ok(())
    }

    /// Records an integrated op id; one seen before means the server
    /// sequenced an op twice (a replay), which must not apply again.
    fn remember_op_id(&mut self, op_id: &str) -> Result<(), String> {
        if !self.seen_op_id_set.insert(op_id.to_owned()) {
            return Err("an op id was sequenced twice (replayed op)".to_owned());
        }
        self.seen_op_ids.push_back(op_id.to_owned());
        if self.seen_op_ids.len() > OP_IDS_KEPT
            && let Some(oldest) = self.seen_op_ids.pop_front()
        {
            self.seen_op_id_set.remove(&oldest);
        }
        Ok(())
    }

    fn handle_digest(&mut self, seq: u64, kv: u32, digest: String) -> Result<(), Failure> {
        if seq > self.seq() {
            remember(&mut self.their_digests, seq, (kv, digest));
            return Ok(());
        }
        self.compare_digest(seq, kv, &digest)
    }

    fn compare_digest(&self, seq: u64, kv: u32, theirs: &str) -> Result<(), Failure> {
        match self.own_digests.get(&seq) {
            Some((own_kv, own)) if *own_kv == kv && own != theirs => {
                Err(Failure::Diverge(DivergeReason::DigestMismatch))
            }
            // Equal, or not comparable (other key version, or too old).
            _ => Ok(()),
        }
    }

    fn handle_cursor(&mut self, user_id: Option<String>, seq: u64, envelope: &Value) -> Result<(), Failure> {
        match payload::open_cursor(&self.ring, &self.doc_id, seq, envelope) {
            Ok((index, length)) => {
                let session = joined(&self.phase)?;
                let start = session.rebase_position(seq, index);
                let end = session.rebase_position(seq, index.saturating_add(length)).max(start);
                self.events.push_back(DocClientEvent::Cursor { user_id, index: start, length: end - start });
                Ok(())
            }
            // A cursor is a moment's position, not history: one under a key
            // the ring lacks is reported and dropped, never waited for (a
            // co-subscriber naming a made-up key version must not stop
            // the document, nor make the app's provider run per cursor).
            // The sender's ops name the key too and do wait for it.
            Err(err) => {
                self.events.push_back(DocClientEvent::CursorError { user_id, error: err.to_string() });
                Ok(())
            }
        }
    }

    fn diverge(&mut self, reason: DivergeReason) {
        let session = self.phase.take_session();
        self.inbox.clear();
        self.early.clear();
        let unsent = session.as_ref().and_then(|s| s.pending_changes().ok().flatten());
        let seq = session.as_ref().map_or(0, DocSession::seq);
        self.phase = Phase::Diverged { session };
        self.events.push_back(DocClientEvent::Diverged { seq, reason, unsent });
    }

    /// Seals and queues the session's submissions (only when joined: a
    /// rejoin resubmits with a current base).
    fn flush_submissions(&mut self) {
        if !self.phase.is_ready() {
            return;
        }
        while let Some(submission) = self.phase.session_mut().and_then(DocSession::poll_transmit) {
            let op_id = self.op_id(submission.op_id);
            match payload::seal_op(
                &mut self.ring,
                &self.kid,
                &self.doc_id,
                submission.base,
                &op_id,
                &submission.op,
            ) {
                Ok(sealed) => {
                    let submit = doc::Submit { base: submission.base, op_id, payload: sealed };
                    self.push_request(DocRequest::Submit(submit));
                }
                Err(err) => return self.diverge(DivergeReason::CannotSeal(err.to_string())),
            }
        }
    }

    fn in_flight_op_id(&self) -> Option<String> {
        self.phase.session().and_then(DocSession::in_flight_id).map(|id| self.op_id(id))
    }

    fn op_id(&self, id: u64) -> String {
        use hmac::Mac;
        let mut mac = crate::crypto::keyed_mac(&self.op_id_secret);
        mac.update(&id.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let tag: String = tag.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("{}-{tag}", self.op_id_prefix)
    }

    fn push_request(&mut self, request: DocRequest) {
        self.outgoing.push_back(request.message());
    }
}

/// Keeps at most [`DIGESTS_KEPT`] entries, dropping the oldest.
fn remember(map: &mut BTreeMap<u64, (u32, String)>, seq: u64, entry: (u32, String)) {
    map.insert(seq, entry);
    while map.len() > DIGESTS_KEPT {
        map.pop_first();
    }
}

/// The session of a joined client. Every caller runs only once joined, so
/// `None` would be our bug; it stops the document instead of panicking on
/// a peer's frame.
fn joined(phase: &Phase) -> Result<&DocSession, Failure> {
    phase.session().ok_or_else(no_session)
}

/// [`joined`], mutable.
fn joined_mut(phase: &mut Phase) -> Result<&mut DocSession, Failure> {
    phase.session_mut().ok_or_else(no_session)
}

fn no_session() -> Failure {
    bad_remote("no document session (an SDK bug)")
}

fn check_key_hint(hint: Option<&str>) -> Result<(), DocClientError> {
    doc::check_key_hint(hint).map_err(|e| match e {
        DocProtocolError::Shape(message) => DocClientError::Malformed(message),
        DocProtocolError::NotDocument => DocClientError::Malformed("not a key hint"),
    })
}

fn bad_remote(reason: &str) -> Failure {
    Failure::Diverge(DivergeReason::BadRemote(reason.to_owned()))
}

/// Why processing a message stopped.
enum Failure {
    /// `kv: None`: the session key to seal with.
    NeedKey {
        kid: String,
        kv: Option<u32>,
    },
    Diverge(DivergeReason),
}

impl From<PayloadError> for Failure {
    fn from(err: PayloadError) -> Failure {
        match err {
            PayloadError::Crypto(CryptoError::UnknownKey { kid, kv }) => {
                Failure::NeedKey { kid, kv: Some(kv) }
            }
            other => Failure::Diverge(DivergeReason::BadRemote(other.to_string())),
        }
    }
}

impl From<SessionError> for Failure {
    fn from(err: SessionError) -> Failure {
        Failure::Diverge(DivergeReason::BadRemote(err.to_string()))
    }
}
