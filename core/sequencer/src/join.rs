//! [`read_join`]: the answer to a `sealcast:doc-join`, read from any
//! [`DocStore`] the same way (the server's sequencer and core's harness
//! both call it).

use sealcast_core::protocol::doc;

use crate::store::{DocId, DocStore, Page, Snapshot, StoreError, StoredOp};

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
                    user_id: op.author,
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
