//! [`DocSync`]: one end-to-end-encrypted document kept in step with the
//! blind sequencer (`docs/protocol.md`), sans-IO and without keys of its
//! own: every call that seals or opens borrows the document's part of the
//! client's key owner ([`DocKeys`]), so keys have one owner and one
//! question policy (`crate::keys`).
//!
//! It wraps a [`DocSession`] (the OT state) with what the wire needs, one
//! job per file: joining, paging, rejoining and settling the session key
//! (`join`); submitting, acknowledgements, refusals and their retries
//! (`submit`); integrating others' ops and cursors (`remote`); digests,
//! snapshots, op-id replay and the `Diverged` stop (`integrity`). The
//! session key (the one to seal with) is settled with the server: the
//! document's recorded key hint names it, and on a new document the first
//! client's claim records it (docs/keys.md, "The document session key").

mod integrity;
mod join;
mod phase;
mod remote;
mod submit;

pub use submit::{RETRY_FIRST, RETRY_MAX};

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde_json::Value;

use super::events::{DivergeReason, DocClientError, DocClientEvent, DocConfig};
use super::payload::{self, PayloadError};
use super::versions::ViewVersions;
use crate::crypto::{CryptoError, Key};
use crate::keys::DocKeys;
use crate::ot::Delta;
use crate::ot::session::{DocSession, SessionError};
use crate::protocol::doc::{self, DocMessage, DocProtocolError, DocReply};
use crate::time::Instant;
use phase::Phase;

/// Server messages held while waiting for a key before the session gives
/// up (the app never supplied it): bounds the memory a missing key costs.
const HELD_MAX: usize = 10_000;

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

/// One client's encrypted document, without its keys (module docs).
#[derive(Debug)]
pub struct DocSync {
    doc_id: String,
    channel: String,
    config: DocConfig,
    /// The key id to seal with.
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
    /// The newest time this client was handed (events, timeouts): when a
    /// submission was sent, for pacing.
    now: Option<Instant>,
    /// Submissions are held until then ([`DocConfig::submit_interval`]).
    release_at: Option<Instant>,
    outgoing: VecDeque<DocMessage>,
    events: VecDeque<DocClientEvent>,
}

impl DocSync {
    /// A document `doc_id` on `private-doc-{doc_id}` (or
    /// `presence-doc-{doc_id}` when `presence`), sealing with the current
    /// version of `kid` in its keys. Keys without `kid` are fine: the join
    /// learns the document's session key hint and asks for the key.
    /// `key_hint` is the hint of the key it holds, when the app knows it:
    /// claimed for a new document, and a different recorded hint replaces
    /// that key (docs/keys.md). `op_id_prefix` should be unique per client
    /// session (e.g. random); `op_id_secret` keys the op ids.
    pub fn new(
        doc_id: &str,
        presence: bool,
        kid: &str,
        key_hint: Option<String>,
        op_id_prefix: &str,
        op_id_secret: [u8; 32],
        config: DocConfig,
    ) -> Result<DocSync, DocClientError> {
        check_key_hint(key_hint.as_deref())?;
        if config.snapshot_every == 0 || config.digest_every == 0 {
            return Err(DocClientError::Malformed("snapshot_every and digest_every must be positive"));
        }
        Ok(DocSync {
            doc_id: doc_id.to_owned(),
            channel: doc::channel_for(doc_id, presence),
            config,
            kid: kid.to_owned(),
            key_hint,
            claimed: false,
            phase: Phase::Idle,
            abandoned: None,
            abandoned_op_seq: None,
            op_id_prefix: op_id_prefix.to_owned(),
            op_id_secret,
            generation: 0,
            inbox: VecDeque::new(),
            early: Vec::new(),
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
            now: None,
            release_at: None,
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The document id.
    pub fn doc_id(&self) -> &str {
        &self.doc_id
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
    /// renders this may edit at that version ([`DocSync::edit_at`]).
    pub fn versioned_view(&self) -> Result<(Delta, u64), DocClientError> {
        Ok((self.view()?, self.versions.head()))
    }

    /// The canonical document at [`DocSync::seq`].
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
    pub fn join(&mut self, keys: &DocKeys<'_>) {
        if self.phase.is_diverged() {
            return;
        }
        let since = self.phase.session().map(DocSession::seq);
        self.send_join(keys, since);
    }

    /// After divergence: drops the session and reloads the document from
    /// the server. The abandoned session's pending changes were already
    /// reported in the `Diverged` event. (Its owner forgets the document's
    /// key refusals: a refusal may have been a passing failure.)
    pub fn restart(&mut self, keys: &DocKeys<'_>) {
        self.bad_snapshots.clear();
        self.abandoned = None;
        self.own_digests.clear();
        self.their_digests.clear();
        self.inbox.clear();
        self.early.clear();
        self.phase = Phase::Idle;
        self.send_join(keys, None);
    }

    /// A change the user made to the SDK's current view (the newest
    /// `Ready`/`RemoteChange` version). Returns the version the view is at
    /// now. An editor that applies changes asynchronously should use
    /// [`DocSync::edit_at`] instead.
    pub fn local_edit(&mut self, keys: &mut DocKeys<'_>, change: Delta) -> Result<u64, DocClientError> {
        let version = self.versions.head();
        self.edit_at(keys, version, change)
    }

    /// A change the user made to the view at `version` (the version of the
    /// last `Ready` or `RemoteChange` the editor applied). When the SDK's
    /// view moved on meanwhile, the change is transformed through what the
    /// editor has not applied yet, and a `RemoteChange` based on the
    /// returned version brings the editor up to date; the changes still
    /// queued for it are then superseded (their base no longer matches).
    /// Returns the version the editor is at after its own change.
    pub fn edit_at(
        &mut self,
        keys: &mut DocKeys<'_>,
        version: u64,
        change: Delta,
    ) -> Result<u64, DocClientError> {
        self.session_for_input()?;
        let rebased = self.versions.rebase(version, change)?;
        let session = self.session_for_input()?;
        session.local_edit(rebased.edit.clone())?;
        let (now, catch_up) = self.versions.edited(rebased);
        if let Some((base, version, change)) = catch_up {
            self.events.push_back(DocClientEvent::RemoteChange { change, base, version });
        }
        self.flush_submissions(keys);
        Ok(now)
    }

    /// Undoes the user's newest change (transformed past remote edits).
    /// The change for the editor arrives as a `RemoteChange`, in order with
    /// the others. Returns false when there is nothing to undo.
    pub fn undo(&mut self, keys: &mut DocKeys<'_>) -> Result<bool, DocClientError> {
        let change = self.session_for_input()?.undo()?;
        Ok(self.editor_change(keys, change))
    }

    /// Redoes the newest undone change, like [`DocSync::undo`].
    pub fn redo(&mut self, keys: &mut DocKeys<'_>) -> Result<bool, DocClientError> {
        let change = self.session_for_input()?.redo()?;
        Ok(self.editor_change(keys, change))
    }

    /// When [`DocSync::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.retry_at, self.release_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: resubmits a refused op whose wait is over, submits
    /// edits held for pacing. (A driver may call it any time, e.g. right
    /// before an edit so that the edit is paced from the right time.)
    pub fn handle_timeout(&mut self, keys: &mut DocKeys<'_>, now: Instant) {
        self.now = Some(now);
        if self.retry_at.is_some_and(|at| at <= now) {
            self.resubmit(keys);
        }
        self.release_if_due(keys);
    }

    /// A frame sharing this user's selection, as a presence client event.
    pub fn cursor(
        &mut self,
        keys: &mut DocKeys<'_>,
        index: usize,
        length: usize,
    ) -> Result<(), DocClientError> {
        let seq = self.phase.session().ok_or(DocClientError::NotReady)?.seq();
        let (ring, rng) = keys.sealing();
        let envelope =
            payload::seal_cursor_with_rng(ring, &self.kid, &self.doc_id, seq, (index, length), rng)?;
        self.outgoing.push_back(doc::CursorUpdate { seq, cursor: envelope }.message());
        Ok(())
    }

    /// Goes on after the document's keys changed: a key came, a refusal
    /// was recorded (the op that named it is skipped, a snapshot under it
    /// passed over: every client of the app is refused the same key,
    /// docs/ot.md "Ops that do not apply"), or a question expired (what
    /// still lacks a key asks again).
    pub fn keys_changed(&mut self, keys: &mut DocKeys<'_>) {
        self.process(keys);
    }

    /// Adds a key the app granted for this document and goes on. `key_hint`
    /// is the hint the provider returned with a new session key (the
    /// answer to a question without hint); it is claimed for the document
    /// (`None`: the empty hint). It is ignored for other keys.
    pub fn add_key(
        &mut self,
        keys: &mut DocKeys<'_>,
        kid: &str,
        kv: u32,
        key: Key,
        key_hint: Option<String>,
    ) -> Result<(), DocClientError> {
        check_key_hint(key_hint.as_deref())?;
        let session_key = kid == self.kid && !self.has_session_key(keys);
        keys.ring_mut().insert(kid, kv, key)?;
        if session_key && self.key_hint.is_none() {
            self.key_hint = Some(key_hint.unwrap_or_default());
        }
        self.process(keys);
        Ok(())
    }

    /// A server frame on [`DocSync::channel`]: its event name, its `data`
    /// (parsed), the sender's user id for client events, and the time it
    /// arrived.
    pub fn handle_event(
        &mut self,
        keys: &mut DocKeys<'_>,
        event: &str,
        data: &Value,
        user_id: Option<&str>,
        now: Instant,
    ) -> Result<(), DocClientError> {
        self.now = Some(now);
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
                    self.handle_error(keys, &error, now);
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
        self.process(keys);
        self.release_if_due(keys);
        Ok(())
    }

    /// The next message to send on [`DocSync::channel`] (encode it with
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
    fn editor_change(&mut self, keys: &mut DocKeys<'_>, change: Option<Delta>) -> bool {
        self.flush_submissions(keys);
        let Some(change) = change else { return false };
        let (base, version) = self.versions.advance(change.clone());
        self.events.push_back(DocClientEvent::RemoteChange { change, base, version });
        true
    }

    /// Works through the inbox in order; stops at a message whose key is
    /// missing (it stays queued, and the key is asked for through the
    /// owner: once while the question is out).
    fn process(&mut self, keys: &mut DocKeys<'_>) {
        while let Some(incoming) = self.inbox.pop_front() {
            if self.phase.is_diverged() {
                self.inbox.clear();
                return;
            }
            match self.handle(keys, &incoming) {
                Ok(()) => {}
                Err(Failure::NeedKey { kid, kv }) => {
                    self.inbox.push_front(incoming);
                    // Asked once while the question is out (a document asks
                    // for one key at a time, so never past the owner's
                    // cap); a refusal comes back through `keys_changed`.
                    keys.ask(&kid, kv, self.doc_key_hint.clone());
                    return;
                }
                Err(Failure::Diverge(reason)) => self.diverge(reason),
            }
        }
        self.flush_submissions(keys);
    }

    fn handle(&mut self, keys: &mut DocKeys<'_>, incoming: &Incoming) -> Result<(), Failure> {
        let joining = self.phase.joining_since();
        match incoming {
            Incoming::State(state) => match joining {
                Some(since) => self.handle_state(keys, state, since),
                None => Ok(()),
            },
            // Live traffic during a join: the state frame decides; keep
            // what comes after it.
            Incoming::Op(_) | Incoming::Ack { .. } if joining.is_some() => {
                self.early.push(incoming.clone());
                Ok(())
            }
            _ if !self.phase.is_ready() => Ok(()),
            Incoming::Op(op) => self.handle_op(keys, op),
            Incoming::Ack { op_id, seq } => self.handle_ack(keys, op_id, *seq),
            Incoming::Digest { seq, kv, digest } => self.handle_digest(*seq, *kv, digest.clone()),
            Incoming::Cursor { user_id, seq, envelope } => {
                self.handle_cursor(keys, user_id.clone(), *seq, envelope)
            }
        }
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

pub(super) fn check_key_hint(hint: Option<&str>) -> Result<(), DocClientError> {
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
