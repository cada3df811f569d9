//! The storage contract's types: what a store is asked ([`DocStore`]),
//! what it keeps ([`StoredOp`], [`Snapshot`]), its limits ([`DocLimits`])
//! and how it refuses ([`StoreError`], with the wire code of each).

use sealcast_core::protocol::doc::DocErrorCode;

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
    /// The user who submitted it, when the server knew them (their
    /// presence or sign-in identity): joins carry it as the op's `user_id`,
    /// as the live broadcast did.
    pub author: Option<String>,
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
    /// counts its payload, its op id and [`OP_OVERHEAD_BYTES`](crate::policy::OP_OVERHEAD_BYTES), so this also
    /// caps the retained ops (262,144 at the default).
    pub max_document_bytes: u64,
    /// Most documents per app (a new document beyond it is refused with
    /// `quota`).
    pub max_documents_per_app: u64,
    /// Most bytes of ops in one join answer (clients page on with `since`).
    pub max_join_page_bytes: usize,
    /// Joins and snapshot uploads one app may have in progress at once, all
    /// its connections together: the store is shared by every app, so one
    /// app's burst of large joins cannot hold it for the others. Beyond
    /// it a join waits in the app's line (served round robin over
    /// connections), a snapshot upload is refused with `rate_limited`.
    pub max_concurrent_requests_per_app: usize,
    /// Joins one app may have waiting in its line (at most 16 per
    /// connection); beyond it `rate_limited`, retried by clients.
    pub max_waiting_joins_per_app: usize,
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
            max_waiting_joins_per_app: 1000,
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
    pub fn code(&self) -> DocErrorCode {
        match self {
            StoreError::Resync { .. } => DocErrorCode::Resync,
            StoreError::TooLarge(_) => DocErrorCode::TooLarge,
            StoreError::SnapshotAhead { .. } | StoreError::Invalid(_) => DocErrorCode::Invalid,
            StoreError::SnapshotStale { .. } => DocErrorCode::StaleSnapshot,
            StoreError::Conflict { .. } => DocErrorCode::Conflict,
            StoreError::Quota(_) => DocErrorCode::Quota,
            StoreError::Busy(_) => DocErrorCode::RateLimited,
            StoreError::Backend(_) => DocErrorCode::Storage,
        }
    }
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
