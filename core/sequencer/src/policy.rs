//! The sequencer's storage policy, applied alike by every [`DocStore`]
//! (memory, SQLite, Redis): which snapshots are kept, how long compacted
//! op ids are remembered, what an op costs against the history limit, and
//! the checks on payloads, snapshots and bases.
//!
//! [`DocStore`]: crate::DocStore

use crate::store::{DocLimits, StoreError};

/// Whether a resubmitted op id is the op stored under it (see the module
/// contract): `stored` and `author` are the stored and the submitting
/// authors; `same_bytes` whether base and payload are identical (unknown,
/// i.e. false, once the payload was compacted).
#[doc(hidden)] // shared by the server's store implementations
pub fn is_resubmission(stored: Option<&str>, author: Option<&str>, same_bytes: bool) -> bool {
    stored == author || same_bytes
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

#[cfg(test)]
mod tests {
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
