//! [`MemoryStore`]: the reference [`DocStore`], in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::policy::{
    APP_QUOTA_REACHED, SNAPSHOT_LAG_MAX, TOMBSTONES_KEPT, check_base, check_payload, check_snapshot,
    is_resubmission, newest_first, op_cost, place_snapshot,
};
use crate::store::{AppendOutcome, DocId, DocLimits, DocStore, Page, Snapshot, StoreError, StoredOp};

#[derive(Debug, Default)]
struct MemoryDoc {
    /// Retained ops with their authors.
    ops: Vec<StoredOp>,
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
            let existing = match doc.ops.iter().find(|op| op.op_id == op_id) {
                Some(op) => Some((op.seq, op.author.as_deref(), op.base == base && op.payload == payload)),
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
            let total: u64 = doc.ops.iter().map(|op| op_cost(&op.op_id, &op.payload)).sum();
            if total + op_cost(op_id, payload) > limit {
                return Err(StoreError::TooLarge(
                    "document history over its size limit: compact with a snapshot",
                ));
            }
            doc.head += 1;
            doc.ops.push(StoredOp {
                seq: doc.head,
                base,
                op_id: op_id.to_owned(),
                payload: payload.to_owned(),
                author: author.map(str::to_owned),
            });
            Ok(AppendOutcome::Appended(doc.head))
        })
    }

    fn head(&self, id: &DocId) -> Result<u64, StoreError> {
        Ok(self.with_doc(id, |doc| doc.head))
    }

    fn ops_since(&self, id: &DocId, since: u64, page: Page) -> Result<Vec<StoredOp>, StoreError> {
        Ok(self.with_doc(id, |doc| {
            let mut fill = page.fill();
            for op in doc.ops.iter().filter(|op| op.seq > since) {
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
            if doc.ops.iter().any(|op| op.seq > snapshot.seq && op.base < snapshot.seq) {
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
            let retained = doc.ops.iter().find(|op| op.op_id == op_id).map(|op| op.seq);
            retained.or(doc.compacted.get(op_id).map(|(seq, _)| *seq))
        }))
    }

    fn compact(&self, id: &DocId, upto: u64) -> Result<u64, StoreError> {
        Ok(self.with_doc(id, |doc| {
            let before = doc.ops.len();
            let (dropped, kept): (Vec<StoredOp>, Vec<StoredOp>) =
                std::mem::take(&mut doc.ops).into_iter().partition(|op| op.seq <= upto);
            doc.ops = kept;
            doc.compacted.extend(dropped.into_iter().map(|op| (op.op_id, (op.seq, op.author))));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{conformance, history_cost_conformance, quota_conformance};

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
