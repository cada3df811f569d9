//! [`DocStore`]: the storage contract of the blind sequencer (the server's
//! SQLite and Redis stores implement it), an in-memory implementation used
//! as the reference in tests (and by the client's in-memory harness), and
//! [`read_join`], the one reading of a join answer.
//!
//! Contract (every implementation passes [`conformance`]):
//! - `append` assigns the next sequence number and makes the op durable
//!   before returning (the server acks only after it); two appends can
//!   never get the same number.
//! - An op id already appended for the document returns its original
//!   sequence number (`Duplicate`) and stores nothing, when the resubmission
//!   is the same op: the same authenticated author (or both anonymous), or
//!   the same base and payload. Otherwise it is someone else's op id
//!   (`StoreError::Conflict`): the first writer keeps it, and nobody can
//!   get another user's op acknowledged as a duplicate and dropped.
//! - An op whose base is below the document's *floor* is refused with
//!   `StoreError::Resync`; so is a base in the future. Compaction and
//!   snapshots raise the floor: a client joining from a snapshot at `S`
//!   must be able to place every later op, so no op based before `S` may
//!   follow it.
//! - A snapshot at `S` is refused (`SnapshotStale`) while a retained op
//!   after `S` is based before `S`, or when `S` is more than
//!   [`SNAPSHOT_LAG_MAX`] behind the head.
//! - Snapshots are kept per uploader (a user id, or a connection for
//!   anonymous ones): each uploader's newest, at most [`SNAPSHOTS_KEPT`]
//!   uploaders, none more than [`SNAPSHOT_SLOT_SPAN`] ops behind the
//!   newest; a new uploader displaces the oldest kept snapshot. The server
//!   cannot tell a good snapshot from garbage, so one uploader (say, a
//!   co-subscriber without the key) can never displace another's, and the
//!   sequencer compacts only behind the *oldest* kept snapshot: a joiner
//!   that cannot open the newest falls back to an older one plus its ops.
//! - Compaction drops payloads up to a sequence number but remembers their
//!   op ids, so a late resubmission is still a `Duplicate`.
//! - Payloads and key hints are opaque, non-empty strings; sizes are limited.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::protocol::doc;

/// A document, per app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocId {
    /// App id.
    pub app: String,
    /// Document id.
    pub doc: String,
}

impl DocId {
    /// A document id.
    pub fn new(app: impl Into<String>, doc: impl Into<String>) -> DocId {
        DocId { app: app.into(), doc: doc.into() }
    }
}

/// A stored operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOp {
    /// Its place in the document's total order (1, 2, …).
    pub seq: u64,
    /// The last sequence number its author had integrated.
    pub base: u64,
    /// The client's op id (idempotency key).
    pub op_id: String,
    /// The opaque, encrypted op.
    pub payload: String,
}

/// The bound on one page of history (a join's answer): at most `ops` ops
/// and `bytes` bytes, but always at least one op, so a client pages
/// through any history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Most ops.
    pub ops: usize,
    /// Most bytes, counted by [`Page::cost`].
    pub bytes: usize,
}

impl Page {
    /// What an op adds to a join answer: its payload and op id plus the
    /// JSON around them.
    pub fn cost(op: &StoredOp) -> usize {
        op.payload.len() + op.op_id.len() + 64
    }

    /// An empty page being filled.
    pub fn fill(self) -> PageFill {
        PageFill { page: self, bytes: 0, ops: Vec::new() }
    }
}

/// A page being filled, op by op, oldest first.
#[derive(Debug)]
pub struct PageFill {
    page: Page,
    bytes: usize,
    /// The ops taken.
    pub ops: Vec<StoredOp>,
}

impl PageFill {
    /// Takes `op` if it fits; false when the page is full (`op` is not
    /// taken and the caller stops reading).
    pub fn push(&mut self, op: StoredOp) -> bool {
        let cost = Page::cost(&op);
        let fits = self.ops.len() < self.page.ops && self.bytes + cost <= self.page.bytes;
        if !fits && !self.ops.is_empty() {
            return false;
        }
        self.bytes += cost;
        self.ops.push(op);
        true
    }

    /// True when no further op fits.
    pub fn is_full(&self) -> bool {
        self.ops.len() >= self.page.ops || self.bytes >= self.page.bytes
    }
}

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The sequence number it captures.
    pub seq: u64,
    /// The opaque, encrypted document.
    pub payload: String,
    /// The non-secret key hint it was sealed under.
    pub key_hint: Option<String>,
}

/// Outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored with this new sequence number.
    Appended(u64),
    /// Already stored under this sequence number (a resubmission).
    Duplicate(u64),
}

/// Whether a resubmitted op id is the op stored under it (see the module
/// contract): `stored` and `author` are the stored and the submitting
/// authors; `same_bytes` whether base and payload are identical (unknown,
/// i.e. false, once the payload was compacted).
#[doc(hidden)] // shared by the server's store implementations
pub fn is_resubmission(stored: Option<&str>, author: Option<&str>, same_bytes: bool) -> bool {
    stored == author || same_bytes
}

/// Storage limits of documents (the `[documents]` table of the config
/// file; docs/configuration.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocLimits {
    /// Largest op payload, bytes.
    pub max_payload_bytes: usize,
    /// Largest snapshot payload, bytes (a snapshot holds the whole
    /// document; it must also fit the server's `max_frame_bytes`).
    pub max_snapshot_bytes: usize,
    /// Largest retained history per document, bytes: every retained op
    /// counts its payload, its op id and [`OP_OVERHEAD_BYTES`], so this also
    /// caps the retained ops (262,144 at the default).
    pub max_document_bytes: u64,
    /// Most documents per app (a new document beyond it is refused with
    /// `quota`).
    pub max_documents_per_app: u64,
    /// Most bytes of ops in one join answer (clients page on with `since`).
    pub max_join_page_bytes: usize,
    /// Joins and snapshot uploads one app may have in progress at once, all
    /// its connections together: the store is shared by every app, so one
    /// app's burst of large joins cannot hold it for the others (beyond
    /// it: `rate_limited`, retried by clients).
    pub max_concurrent_requests_per_app: usize,
}

impl Default for DocLimits {
    fn default() -> DocLimits {
        DocLimits {
            max_payload_bytes: 64 * 1024,
            max_snapshot_bytes: 16 * 1024 * 1024,
            max_document_bytes: 64 * 1024 * 1024,
            max_documents_per_app: 100_000,
            max_join_page_bytes: 1024 * 1024,
            max_concurrent_requests_per_app: 2,
        }
    }
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The op's base is outside the retained history (caused by: a client
    /// too far behind): it must resynchronize from a snapshot.
    #[error("base {base} is outside the retained history ({oldest}..={head}): resync")]
    Resync {
        /// The op's base.
        base: u64,
        /// Oldest base still accepted.
        oldest: u64,
        /// Current head.
        head: u64,
    },
    /// A payload or the document is over its limit (caused by: peer).
    #[error("{0}")]
    TooLarge(&'static str),
    /// A snapshot that joiners could not use: an op sequenced after it is
    /// based before it (caused by: a client snapshotting too early; retry
    /// with a newer one).
    #[error("snapshot at {seq} is stale: a later op is based before it")]
    SnapshotStale {
        /// The snapshot's sequence.
        seq: u64,
    },
    /// A snapshot for a sequence number not yet reached (caused by: peer).
    #[error("snapshot at {seq} is past the head {head}")]
    SnapshotAhead {
        /// The snapshot's sequence.
        seq: u64,
        /// Current head.
        head: u64,
    },
    /// A malformed op or snapshot (caused by: peer).
    #[error("{0}")]
    Invalid(&'static str),
    /// The app has [`DocLimits::max_documents_per_app`] documents already
    /// (caused by: the app's usage).
    #[error("{0}")]
    Quota(&'static str),
    /// The op id belongs to an op another author submitted (caused by: a
    /// client reusing or guessing op ids): resubmit under a fresh id.
    #[error("op id already used by another author's op {seq}")]
    Conflict {
        /// The sequence number of the op holding the id.
        seq: u64,
    },
    /// The app has `[documents] max_concurrent_requests_per_app` joins or
    /// snapshots in progress (caused by: the app's load): retry shortly.
    #[error("the app has {0} document requests in progress: retry")]
    Busy(usize),
    /// The storage backend failed (caused by: environment).
    #[error("storage: {0}")]
    Backend(String),
}

impl StoreError {
    /// The document protocol's error code for it (`doc-error` `code`;
    /// docs/protocol.md): `storage` for a backend failure.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Resync { .. } => "resync",
            StoreError::TooLarge(_) => "too_large",
            StoreError::SnapshotAhead { .. } | StoreError::Invalid(_) => "invalid",
            StoreError::SnapshotStale { .. } => "stale_snapshot",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Quota(_) => "quota",
            StoreError::Busy(_) => "rate_limited",
            StoreError::Backend(_) => "storage",
        }
    }
}

/// What a joining client receives.
#[derive(Debug)]
pub struct JoinState {
    /// The last sequence number assigned.
    pub head: u64,
    /// The newest snapshot, or the kept one the client asked for.
    pub snapshot: Option<Snapshot>,
    /// The sequence numbers of every kept snapshot, newest first (a client
    /// that cannot open one asks for another).
    pub snapshots: Vec<u64>,
    /// Ops after `since` (or after the snapshot): at most
    /// [`doc::JOIN_PAGE_OPS`] and the page's bytes (the snapshot included),
    /// at least one. A page that ends before `head` is continued by joining
    /// again with `since`.
    pub ops: Vec<StoredOp>,
    /// The sequence number of the op id the client asked about, if that
    /// op was sequenced (a client rejoining with an op in flight).
    pub op_seq: Option<u64>,
    /// The document's session key hint ([`DocStore::claim_key_hint`]).
    pub key_hint: Option<String>,
}

impl JoinState {
    /// The wire form (`sealcast_internal:doc-state` data), by move.
    pub fn into_wire(self) -> doc::JoinState {
        doc::JoinState {
            head: self.head,
            snapshot: self.snapshot.map(|s| doc::StateSnapshot {
                seq: s.seq,
                payload: s.payload,
                key_hint: s.key_hint,
            }),
            snapshots: self.snapshots,
            ops: self
                .ops
                .into_iter()
                .map(|op| doc::SequencedOp {
                    seq: op.seq,
                    base: op.base,
                    op_id: op.op_id,
                    payload: op.payload,
                    user_id: None,
                })
                .collect(),
            op_seq: self.op_seq,
            key_hint: self.key_hint,
        }
    }
}

/// A join request as the store answers it (`sealcast:doc-join` data).
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinQuery<'a> {
    /// Ops after this sequence number (default: after the snapshot).
    pub since: Option<u64>,
    /// Where this op id was sequenced, if it was.
    pub op_id: Option<&'a str>,
    /// The kept snapshot to start from (default: the newest).
    pub from_snapshot: Option<u64>,
    /// The session key hint to record if the document has none.
    pub claim: Option<&'a str>,
}

impl<'a> From<&'a doc::Join> for JoinQuery<'a> {
    fn from(join: &'a doc::Join) -> JoinQuery<'a> {
        JoinQuery {
            since: join.since,
            op_id: join.op_id.as_deref(),
            from_snapshot: join.snapshot,
            claim: join.key_hint.as_deref(),
        }
    }
}

/// Reads the answer to a join: a snapshot (the newest, or the kept one at
/// `from_snapshot`) and the ops after `since` (default: after that
/// snapshot), at most `page_bytes` with the snapshot, where `op_id` was
/// sequenced, and the session key hint (recording the claim first).
pub fn read_join(
    store: &dyn DocStore,
    id: &DocId,
    query: JoinQuery<'_>,
    page_bytes: usize,
) -> Result<JoinState, StoreError> {
    let JoinQuery { since, op_id, from_snapshot, claim } = query;
    // First, so that a claimant's answer already names the winner.
    let key_hint = match claim {
        Some(claim) => store.claim_key_hint(id, claim)?,
        None => store.key_hint(id)?,
    };
    let snapshots = store.snapshot_seqs(id)?;
    let wanted = from_snapshot.filter(|seq| snapshots.contains(seq)).or(snapshots.first().copied());
    let snapshot = match wanted {
        Some(seq) => store.snapshot_at(id, seq)?,
        None => None,
    };
    let since = since.unwrap_or_else(|| snapshot.as_ref().map_or(0, |s| s.seq));
    let bytes = page_bytes.saturating_sub(snapshot.as_ref().map_or(0, |s| s.payload.len()));
    let ops = store.ops_since(id, since, Page { ops: doc::JOIN_PAGE_OPS, bytes })?;
    let op_seq = match op_id {
        Some(op_id) => store.find_op(id, op_id)?,
        None => None,
    };
    Ok(JoinState { head: store.head(id)?, snapshot, snapshots, ops, op_seq, key_hint })
}

/// Where the sequencer keeps ops, snapshots and key hints.
pub trait DocStore: Send + Sync {
    /// Appends an op by `author` (the submitting user id, when known; see
    /// the module contract).
    fn append(
        &self,
        id: &DocId,
        base: u64,
        op_id: &str,
        payload: &str,
        author: Option<&str>,
    ) -> Result<AppendOutcome, StoreError>;
    /// The last sequence number assigned (0 for a new document).
    fn head(&self, id: &DocId) -> Result<u64, StoreError>;
    /// Retained ops with `seq > since`, oldest first, as many as fit `page`.
    fn ops_since(&self, id: &DocId, since: u64, page: Page) -> Result<Vec<StoredOp>, StoreError>;
    /// Stores a snapshot by `uploader` (see the module contract).
    fn put_snapshot(&self, id: &DocId, snapshot: &Snapshot, uploader: &str) -> Result<(), StoreError>;
    /// The sequence number given to `op_id`, compacted or not.
    fn find_op(&self, id: &DocId, op_id: &str) -> Result<Option<u64>, StoreError>;
    /// The sequence numbers of the kept snapshots, newest first.
    fn snapshot_seqs(&self, id: &DocId) -> Result<Vec<u64>, StoreError>;
    /// The kept snapshot at `seq`.
    fn snapshot_at(&self, id: &DocId, seq: u64) -> Result<Option<Snapshot>, StoreError>;
    /// The newest snapshot.
    fn latest_snapshot(&self, id: &DocId) -> Result<Option<Snapshot>, StoreError> {
        match self.snapshot_seqs(id)?.first() {
            Some(&seq) => self.snapshot_at(id, seq),
            None => Ok(None),
        }
    }
    /// Drops ops with `seq <= upto`; later bases must be ≥ `upto`.
    /// Returns how many were dropped.
    fn compact(&self, id: &DocId, upto: u64) -> Result<u64, StoreError>;
    /// The document's session key hint: the first claim's, never changed.
    fn key_hint(&self, id: &DocId) -> Result<Option<String>, StoreError>;
    /// Records `hint` as the document's session key hint if it has none and
    /// no ops yet (a document from before hints were recorded keeps none);
    /// returns the recorded hint. Concurrent claims: exactly one wins, and
    /// every claimant is answered with the winner. A claim that creates a
    /// document counts against [`DocLimits::max_documents_per_app`] as an
    /// append does (`quota`).
    fn claim_key_hint(&self, id: &DocId, hint: &str) -> Result<Option<String>, StoreError>;
}

#[derive(Debug, Default)]
struct MemoryDoc {
    /// Retained ops with their authors.
    ops: Vec<(StoredOp, Option<String>)>,
    /// Op ids of compacted ops, with their sequence numbers and authors.
    compacted: HashMap<String, (u64, Option<String>)>,
    head: u64,
    /// Oldest base accepted (raised by compaction and snapshots).
    floor: u64,
    /// Kept snapshots with their uploaders.
    snapshots: Vec<(String, Snapshot)>,
    /// The session key hint, once claimed.
    key_hint: Option<String>,
}

impl MemoryDoc {
    /// Counts against the app's document quota: has ops or a claimed hint.
    fn exists(&self) -> bool {
        self.head > 0 || self.key_hint.is_some()
    }
}

/// A [`DocStore`] in memory: the reference implementation for tests (and a
/// choice for deployments that keep no document history).
#[derive(Debug, Default)]
pub struct MemoryStore {
    limits: DocLimits,
    docs: Mutex<HashMap<DocId, MemoryDoc>>,
}

impl MemoryStore {
    /// An empty store with `limits`.
    pub fn new(limits: DocLimits) -> MemoryStore {
        MemoryStore { limits, docs: Mutex::default() }
    }

    fn with_doc<T>(&self, id: &DocId, f: impl FnOnce(&mut MemoryDoc) -> T) -> T {
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        f(docs.entry(id.clone()).or_default())
    }

    /// `quota` when `id` does not exist yet and its app has its most.
    fn check_quota(&self, id: &DocId) -> Result<(), StoreError> {
        let docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        let exists = docs.get(id).is_some_and(MemoryDoc::exists);
        let count = || docs.iter().filter(|(k, doc)| k.app == id.app && doc.exists()).count() as u64;
        if !exists && count() >= self.limits.max_documents_per_app {
            return Err(StoreError::Quota(APP_QUOTA_REACHED));
        }
        Ok(())
    }
}

impl DocStore for MemoryStore {
    fn append(
        &self,
        id: &DocId,
        base: u64,
        op_id: &str,
        payload: &str,
        author: Option<&str>,
    ) -> Result<AppendOutcome, StoreError> {
        check_payload(&self.limits, payload)?;
        let limit = self.limits.max_document_bytes;
        self.check_quota(id)?;
        self.with_doc(id, |doc| {
            let existing = match doc.ops.iter().find(|(op, _)| op.op_id == op_id) {
                Some((op, by)) => Some((op.seq, by.as_deref(), op.base == base && op.payload == payload)),
                None => doc.compacted.get(op_id).map(|(seq, by)| (*seq, by.as_deref(), false)),
            };
            if let Some((seq, by, same_bytes)) = existing {
                return if is_resubmission(by, author, same_bytes) {
                    Ok(AppendOutcome::Duplicate(seq))
                } else {
                    Err(StoreError::Conflict { seq })
                };
            }
            check_base(base, doc.floor, doc.head)?;
            let total: u64 = doc.ops.iter().map(|(op, _)| op_cost(&op.op_id, &op.payload)).sum();
            if total + op_cost(op_id, payload) > limit {
                return Err(StoreError::TooLarge(
                    "document history over its size limit: compact with a snapshot",
                ));
            }
            doc.head += 1;
            let op = StoredOp { seq: doc.head, base, op_id: op_id.to_owned(), payload: payload.to_owned() };
            doc.ops.push((op, author.map(str::to_owned)));
            Ok(AppendOutcome::Appended(doc.head))
        })
    }

    fn head(&self, id: &DocId) -> Result<u64, StoreError> {
        Ok(self.with_doc(id, |doc| doc.head))
    }

    fn ops_since(&self, id: &DocId, since: u64, page: Page) -> Result<Vec<StoredOp>, StoreError> {
        Ok(self.with_doc(id, |doc| {
            let mut fill = page.fill();
            for (op, _) in doc.ops.iter().filter(|(op, _)| op.seq > since) {
                if !fill.push(op.clone()) {
                    break;
                }
            }
            fill.ops
        }))
    }

    fn put_snapshot(&self, id: &DocId, snapshot: &Snapshot, uploader: &str) -> Result<(), StoreError> {
        check_snapshot(&self.limits, &snapshot.payload)?;
        self.with_doc(id, |doc| {
            if snapshot.seq > doc.head {
                return Err(StoreError::SnapshotAhead { seq: snapshot.seq, head: doc.head });
            }
            if doc.head - snapshot.seq > SNAPSHOT_LAG_MAX {
                return Err(StoreError::SnapshotStale { seq: snapshot.seq });
            }
            let kept: Vec<(String, u64)> = doc.snapshots.iter().map(|(u, s)| (u.clone(), s.seq)).collect();
            let Some(displaced) = place_snapshot(&kept, uploader, snapshot.seq) else { return Ok(()) };
            if doc.ops.iter().any(|(op, _)| op.seq > snapshot.seq && op.base < snapshot.seq) {
                return Err(StoreError::SnapshotStale { seq: snapshot.seq });
            }
            doc.snapshots.retain(|(u, _)| !displaced.contains(u));
            doc.snapshots.push((uploader.to_owned(), snapshot.clone()));
            doc.floor = doc.floor.max(snapshot.seq);
            Ok(())
        })
    }

    fn snapshot_seqs(&self, id: &DocId) -> Result<Vec<u64>, StoreError> {
        Ok(self.with_doc(id, |doc| newest_first(doc.snapshots.iter().map(|(_, s)| s.seq))))
    }

    fn snapshot_at(&self, id: &DocId, seq: u64) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.with_doc(id, |doc| doc.snapshots.iter().map(|(_, s)| s).find(|s| s.seq == seq).cloned()))
    }

    fn find_op(&self, id: &DocId, op_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.with_doc(id, |doc| {
            let retained = doc.ops.iter().find(|(op, _)| op.op_id == op_id).map(|(op, _)| op.seq);
            retained.or(doc.compacted.get(op_id).map(|(seq, _)| *seq))
        }))
    }

    fn compact(&self, id: &DocId, upto: u64) -> Result<u64, StoreError> {
        Ok(self.with_doc(id, |doc| {
            let before = doc.ops.len();
            let (dropped, kept) =
                std::mem::take(&mut doc.ops).into_iter().partition(|(op, _)| op.seq <= upto);
            doc.ops = kept;
            let dropped: Vec<(StoredOp, Option<String>)> = dropped;
            doc.compacted.extend(dropped.into_iter().map(|(op, by)| (op.op_id, (op.seq, by))));
            let forget = upto.saturating_sub(TOMBSTONES_KEPT);
            doc.compacted.retain(|_, (seq, _)| *seq > forget);
            doc.floor = doc.floor.max(upto.min(doc.head));
            (before - doc.ops.len()) as u64
        }))
    }

    fn key_hint(&self, id: &DocId) -> Result<Option<String>, StoreError> {
        Ok(self.with_doc(id, |doc| doc.key_hint.clone()))
    }

    fn claim_key_hint(&self, id: &DocId, hint: &str) -> Result<Option<String>, StoreError> {
        self.check_quota(id)?;
        Ok(self.with_doc(id, |doc| {
            if doc.key_hint.is_none() && doc.head == 0 {
                doc.key_hint = Some(hint.to_owned());
            }
            doc.key_hint.clone()
        }))
    }
}

/// What one retained op counts against [`DocLimits::max_document_bytes`]:
/// its payload and op id plus [`OP_OVERHEAD_BYTES`] for the row (sequence
/// numbers, base, author, index entries), so a flood of tiny ops with long
/// ids is bounded as much as one of large payloads.
#[doc(hidden)] // shared by the server's store implementations
pub fn op_cost(op_id: &str, payload: &str) -> u64 {
    (op_id.len() + payload.len()) as u64 + OP_OVERHEAD_BYTES
}

/// Storage per op beyond its payload and op id (measured: a 1-byte op with
/// a 128-byte id took ~353 bytes in SQLite, issue 11).
pub const OP_OVERHEAD_BYTES: u64 = 256;

/// Farthest a snapshot may be behind the head: an older one is refused as
/// stale without looking at the ops after it (honest clients snapshot the
/// op they were just acknowledged, a few ops behind at most), so checking a
/// snapshot never costs time proportional to the history.
pub const SNAPSHOT_LAG_MAX: u64 = 1000;

/// Uploaders whose newest snapshot is kept (see the module contract).
pub const SNAPSHOTS_KEPT: usize = 3;

/// A kept snapshot more than this many ops behind the newest is dropped,
/// so a stale one cannot hold compaction back for ever.
pub const SNAPSHOT_SLOT_SPAN: u64 = 20_000;

/// Where a new snapshot by `uploader` at `seq` goes, given the kept ones
/// `(uploader, seq)`: `None` when it is ignored (its uploader has a newer
/// one, or every slot is newer), otherwise the uploaders whose snapshots it
/// displaces (its own older one, slots too far behind, the oldest slot
/// when all are taken).
#[doc(hidden)] // shared by the server's store implementations
pub fn place_snapshot(kept: &[(String, u64)], uploader: &str, seq: u64) -> Option<Vec<String>> {
    if kept.iter().any(|(u, s)| u == uploader && *s >= seq) {
        return None;
    }
    let newest = kept.iter().map(|(_, s)| *s).chain([seq]).max().unwrap_or(seq);
    let mut displaced: Vec<String> = kept
        .iter()
        .filter(|(u, s)| u == uploader || newest - s > SNAPSHOT_SLOT_SPAN)
        .map(|(u, _)| u.clone())
        .collect();
    let remaining: Vec<&(String, u64)> = kept.iter().filter(|(u, _)| !displaced.contains(u)).collect();
    if remaining.len() >= SNAPSHOTS_KEPT {
        let oldest = remaining.iter().min_by_key(|(_, s)| *s)?;
        if oldest.1 >= seq {
            return None;
        }
        displaced.push(oldest.0.clone());
    }
    Some(displaced)
}

/// Sequence numbers, newest first.
#[doc(hidden)] // shared by the server's store implementations
pub fn newest_first(seqs: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut seqs: Vec<u64> = seqs.collect();
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs
}

/// Compacted op ids remembered, counted back from the compaction point:
/// a resubmission or `op_seq` question older than this many ops is
/// answered as for an unknown op id (the client then offers its edit as
/// unsent instead of resubmitting it). Bounds what tombstones cost.
pub const TOMBSTONES_KEPT: u64 = 100_000;

/// The message of [`StoreError::Quota`].
#[doc(hidden)] // shared by the server's store implementations
pub const APP_QUOTA_REACHED: &str = "the app has its maximum number of documents";

/// Refuses payloads over the limit.
#[doc(hidden)] // shared by the server's store implementations
pub fn check_payload(limits: &DocLimits, payload: &str) -> Result<(), StoreError> {
    if payload.is_empty() {
        return Err(StoreError::Invalid("empty payload"));
    }
    if payload.len() > limits.max_payload_bytes {
        return Err(StoreError::TooLarge("payload over the per-op size limit"));
    }
    Ok(())
}

/// Refuses snapshots over the limit.
#[doc(hidden)] // shared by the server's store implementations
pub fn check_snapshot(limits: &DocLimits, payload: &str) -> Result<(), StoreError> {
    if payload.is_empty() {
        return Err(StoreError::Invalid("empty snapshot"));
    }
    if payload.len() > limits.max_snapshot_bytes {
        return Err(StoreError::TooLarge("snapshot over its size limit"));
    }
    Ok(())
}

/// A base must lie in `floor..=head`.
#[doc(hidden)] // shared by the server's store implementations
pub fn check_base(base: u64, floor: u64, head: u64) -> Result<(), StoreError> {
    if base < floor || base > head {
        return Err(StoreError::Resync { base, oldest: floor, head });
    }
    Ok(())
}

/// The contract every [`DocStore`] must meet; run against each backend: every [`DocStore`] implementation passes them.
#[cfg(any(test, feature = "store-conformance"))]
pub fn conformance(store: &dyn DocStore) {
    let count = |n| Page { ops: n, bytes: usize::MAX };
    let doc = DocId::new("app", "doc-1");
    let other = DocId::new("app", "doc-2");
    let other_app = DocId::new("app-2", "doc-1");
    assert_eq!(store.head(&doc).unwrap(), 0);
    assert_eq!(store.append(&doc, 0, "c1-1", "op-a", None).unwrap(), AppendOutcome::Appended(1));
    // Any op id and payload bytes round-trip (separators included).
    let odd = DocId::new("app", "doc-odd");
    assert_eq!(store.append(&odd, 0, "a|b|9", "x|y|é", None).unwrap(), AppendOutcome::Appended(1));
    let stored = store.ops_since(&odd, 0, count(5)).unwrap();
    assert_eq!((stored[0].op_id.as_str(), stored[0].payload.as_str()), ("a|b|9", "x|y|é"));
    assert_eq!(store.append(&doc, 0, "c2-1", "op-b", None).unwrap(), AppendOutcome::Appended(2));
    assert_eq!(store.append(&doc, 2, "c1-2", "op-c", None).unwrap(), AppendOutcome::Appended(3));
    // Idempotent resubmission.
    assert_eq!(store.append(&doc, 0, "c2-1", "op-b", None).unwrap(), AppendOutcome::Duplicate(2));
    // An op id is its first author's: the same author resubmitting (with a
    // new base and payload, as a client does after a reconnect) is a
    // duplicate; anyone else, or the same bytes by anyone, is told apart.
    let ann = DocId::new("app", "doc-authors");
    assert_eq!(store.append(&ann, 0, "a-1", "p1", Some("ann")).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.append(&ann, 1, "a-1", "p1-again", Some("ann")).unwrap(), AppendOutcome::Duplicate(1));
    assert!(matches!(
        store.append(&ann, 1, "a-1", "stolen", Some("mallory")),
        Err(StoreError::Conflict { seq: 1 })
    ));
    assert!(matches!(store.append(&ann, 1, "a-1", "anon", None), Err(StoreError::Conflict { seq: 1 })));
    assert_eq!(store.append(&ann, 0, "a-1", "p1", Some("bob")).unwrap(), AppendOutcome::Duplicate(1));
    assert_eq!(store.head(&ann).unwrap(), 1, "nothing was stored twice");
    assert_eq!(store.head(&doc).unwrap(), 3);
    // Documents and apps are separate sequences.
    assert_eq!(store.append(&other, 0, "c1-1", "x", None).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.append(&other_app, 0, "c1-1", "y", None).unwrap(), AppendOutcome::Appended(1));
    // A base in the future is refused.
    assert!(matches!(store.append(&doc, 9, "c3-1", "z", None), Err(StoreError::Resync { .. })));
    let ops = store.ops_since(&doc, 1, count(10)).unwrap();
    assert_eq!(
        ops.iter().map(|o| (o.seq, o.base, o.op_id.as_str(), o.payload.as_str())).collect::<Vec<_>>(),
        vec![(2, 0, "c2-1", "op-b"), (3, 2, "c1-2", "op-c")]
    );
    assert_eq!(store.ops_since(&doc, 0, count(1)).unwrap().len(), 1);
    // Pages are bounded by bytes too, but never empty.
    let page = |bytes| Page { ops: 10, bytes };
    let two = 2 * (4 + 4 + 64);
    assert_eq!(store.ops_since(&doc, 0, page(two)).unwrap().len(), 2);
    assert_eq!(store.ops_since(&doc, 0, page(two - 1)).unwrap().len(), 1);
    assert_eq!(store.ops_since(&doc, 0, page(1)).unwrap().len(), 1);
    // Snapshots: newest wins; not past the head.
    assert!(store.latest_snapshot(&doc).unwrap().is_none());
    let snap = Snapshot { seq: 2, payload: "snap-2".into(), key_hint: Some("salt-1".into()) };
    store.put_snapshot(&doc, &snap, "ann").unwrap();
    store.put_snapshot(&doc, &Snapshot { seq: 1, payload: "old".into(), key_hint: None }, "ann").unwrap();
    assert_eq!(store.latest_snapshot(&doc).unwrap(), Some(snap));
    assert_eq!(store.snapshot_seqs(&doc).unwrap(), vec![2]);
    assert!(matches!(
        store.put_snapshot(&doc, &Snapshot { seq: 99, payload: "s".into(), key_hint: None }, "ann"),
        Err(StoreError::SnapshotAhead { .. })
    ));
    // Compaction drops history; older bases must resync.
    assert_eq!(store.compact(&doc, 2).unwrap(), 2);
    assert_eq!(store.ops_since(&doc, 0, count(10)).unwrap().len(), 1);
    assert!(matches!(store.append(&doc, 1, "c4-1", "late", None), Err(StoreError::Resync { oldest: 2, .. })));
    // A compacted op id is still a duplicate, never appended again.
    assert_eq!(store.append(&doc, 0, "c1-1", "op-a", None).unwrap(), AppendOutcome::Duplicate(1));
    store.compact(&ann, 1).unwrap();
    assert!(matches!(
        store.append(&ann, 1, "a-1", "x", Some("mallory")),
        Err(StoreError::Conflict { seq: 1 })
    ));
    assert_eq!(store.append(&ann, 1, "a-1", "x", Some("ann")).unwrap(), AppendOutcome::Duplicate(1));
    assert_eq!(store.find_op(&doc, "c1-1").unwrap(), Some(1));
    assert_eq!(store.find_op(&doc, "c1-2").unwrap(), Some(3));
    assert_eq!(store.find_op(&doc, "nope").unwrap(), None);
    assert_eq!(store.append(&doc, 2, "c4-2", "ok", None).unwrap(), AppendOutcome::Appended(4));
    // Limits.
    assert!(matches!(
        store.append(&doc, 4, "big", &"x".repeat(64 * 1024 + 1), None),
        Err(StoreError::TooLarge(_))
    ));

    // A snapshot that a later op bases before is refused; an accepted one
    // raises the floor for later ops.
    let fresh = DocId::new("app", "doc-3");
    store.append(&fresh, 0, "x1", "a", None).unwrap();
    store.append(&fresh, 0, "x2", "b", None).unwrap();
    let early = Snapshot { seq: 1, payload: "s1".into(), key_hint: None };
    assert!(matches!(store.put_snapshot(&fresh, &early, "x"), Err(StoreError::SnapshotStale { seq: 1 })));
    store.put_snapshot(&fresh, &Snapshot { seq: 2, payload: "s2".into(), key_hint: None }, "x").unwrap();
    assert!(matches!(store.append(&fresh, 1, "x3", "c", None), Err(StoreError::Resync { oldest: 2, .. })));
    assert_eq!(store.append(&fresh, 2, "x4", "d", None).unwrap(), AppendOutcome::Appended(3));

    // Snapshots are kept per uploader: Mallory's garbage does not displace
    // Ann's; each uploader's newer one replaces its own; a fourth uploader
    // displaces the oldest.
    let kept = DocId::new("app", "doc-snaps");
    for i in 0..10u64 {
        store.append(&kept, i, &format!("k{i}"), "p", None).unwrap();
    }
    let at = |seq: u64, payload: &str| Snapshot { seq, payload: payload.into(), key_hint: None };
    store.put_snapshot(&kept, &at(4, "ann-4"), "ann").unwrap();
    store.put_snapshot(&kept, &at(6, "garbage-6"), "mallory").unwrap();
    store.put_snapshot(&kept, &at(7, "garbage-7"), "mallory").unwrap();
    assert_eq!(store.snapshot_seqs(&kept).unwrap(), vec![7, 4]);
    assert_eq!(store.snapshot_at(&kept, 4).unwrap().map(|s| s.payload), Some("ann-4".into()));
    assert_eq!(store.latest_snapshot(&kept).unwrap().map(|s| s.payload), Some("garbage-7".into()));
    store.put_snapshot(&kept, &at(8, "bob-8"), "bob").unwrap();
    store.put_snapshot(&kept, &at(9, "carl-9"), "carl").unwrap();
    assert_eq!(store.snapshot_seqs(&kept).unwrap(), vec![9, 8, 7]);
    assert_eq!(store.snapshot_at(&kept, 4).unwrap(), None);

    // The session key hint: the first claim on a new document wins and
    // never changes; a document with ops but no hint (from before hints
    // were recorded) keeps none.
    let new = DocId::new("app", "doc-hint");
    assert_eq!(store.key_hint(&new).unwrap(), None);
    assert_eq!(store.claim_key_hint(&new, "salt-a").unwrap().as_deref(), Some("salt-a"));
    assert_eq!(store.claim_key_hint(&new, "salt-b").unwrap().as_deref(), Some("salt-a"));
    store.append(&new, 0, "h1", "p", None).unwrap();
    assert_eq!(store.claim_key_hint(&new, "salt-c").unwrap().as_deref(), Some("salt-a"));
    assert_eq!(store.key_hint(&new).unwrap().as_deref(), Some("salt-a"));
    assert_eq!(store.claim_key_hint(&doc, "late").unwrap(), None, "a document with history keeps no hint");
    let empty = DocId::new("app", "doc-empty-hint");
    assert_eq!(store.claim_key_hint(&empty, "").unwrap().as_deref(), Some(""));
    let state = read_join(store, &new, JoinQuery::default(), usize::MAX).unwrap();
    assert_eq!((state.head, state.key_hint.as_deref()), (1, Some("salt-a")));
}

/// The per-app document quota, on a store opened with
/// `max_documents_per_app = 2`.
/// The quota part of the contract's tests.
#[cfg(any(test, feature = "store-conformance"))]
pub fn quota_conformance(store: &dyn DocStore) {
    let (a, b, c) = (DocId::new("q", "a"), DocId::new("q", "b"), DocId::new("q", "c"));
    store.append(&a, 0, "1", "p", None).unwrap();
    store.append(&b, 0, "1", "p", None).unwrap();
    assert!(matches!(store.append(&c, 0, "1", "p", None), Err(StoreError::Quota(_))));
    assert_eq!(
        store.append(&a, 1, "2", "p", None).unwrap(),
        AppendOutcome::Appended(2),
        "existing documents go on"
    );
    assert_eq!(
        store.append(&DocId::new("other-app", "c"), 0, "1", "p", None).unwrap(),
        AppendOutcome::Appended(1)
    );
    // A claimed hint creates a document: the quota counts it, and a claim
    // beyond the quota is refused like an append.
    assert!(matches!(store.claim_key_hint(&c, "h"), Err(StoreError::Quota(_))));
    let (x, y) = (DocId::new("q2", "x"), DocId::new("q2", "y"));
    store.claim_key_hint(&x, "h").unwrap();
    store.claim_key_hint(&DocId::new("q2", "z"), "h").unwrap();
    assert!(matches!(store.append(&y, 0, "1", "p", None), Err(StoreError::Quota(_))));
    assert_eq!(store.append(&x, 0, "1", "p", None).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.claim_key_hint(&x, "other").unwrap().as_deref(), Some("h"), "existing documents go on");
}

/// The history limit counts op ids and per-op overhead (issue 11: a 1-byte
/// op with a 128-byte op id used to count as 1 byte), on a store opened
/// with `max_document_bytes = 1000`.
/// The history-cost part of the contract's tests.
#[cfg(any(test, feature = "store-conformance"))]
pub fn history_cost_conformance(store: &dyn DocStore) {
    let doc = DocId::new("cost", "d");
    let long_id = |n: u32| format!("{n:0>128}");
    // 1 + 128 + 256 = 385 bytes each: two fit in 1,000, a third does not.
    assert_eq!(store.append(&doc, 0, &long_id(1), "p", None).unwrap(), AppendOutcome::Appended(1));
    assert_eq!(store.append(&doc, 1, &long_id(2), "p", None).unwrap(), AppendOutcome::Appended(2));
    assert!(matches!(store.append(&doc, 2, &long_id(3), "p", None), Err(StoreError::TooLarge(_))));
}

#[cfg(test)]
mod placement_tests {
    use super::*;

    fn kept(slots: &[(&str, u64)]) -> Vec<(String, u64)> {
        slots.iter().map(|(u, s)| ((*u).to_owned(), *s)).collect()
    }

    #[test]
    fn snapshots_are_placed_per_uploader() {
        assert_eq!(place_snapshot(&[], "a", 5), Some(vec![]));
        assert_eq!(place_snapshot(&kept(&[("a", 5)]), "a", 4), None, "older than its own");
        assert_eq!(place_snapshot(&kept(&[("a", 5)]), "a", 6), Some(vec!["a".into()]));
        let full = kept(&[("a", 5), ("b", 6), ("c", 7)]);
        assert_eq!(place_snapshot(&full, "d", 8), Some(vec!["a".into()]));
        assert_eq!(place_snapshot(&full, "d", 4), None, "older than every slot");
        let stale = kept(&[("a", 5), ("b", 30_000)]);
        assert_eq!(place_snapshot(&stale, "c", 30_001), Some(vec!["a".into()]), "too far behind");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_meets_the_contract() {
        conformance(&MemoryStore::new(DocLimits::default()));
        quota_conformance(&MemoryStore::new(DocLimits { max_documents_per_app: 2, ..DocLimits::default() }));
        history_cost_conformance(&MemoryStore::new(DocLimits {
            max_document_bytes: 1000,
            ..DocLimits::default()
        }));
    }
}
