//! Integrity: digests at checkpoints (published by the author, compared
//! by everyone; a mismatch stops the session), snapshots at checkpoints,
//! the op-id replay check, and the `Diverged` stop itself.

use std::collections::BTreeMap;

use super::phase::Phase;
use super::{DocSync, Failure, joined};
use crate::doc::events::{DivergeReason, DocClientEvent};
use crate::doc::payload;
use crate::keys::DocKeys;
use crate::ot::session::DocSession;
use crate::protocol::doc::{self, DocRequest};

/// Own and reported digests remembered, per direction.
const DIGESTS_KEPT: usize = 64;
/// Op ids remembered to catch a replayed op (a sequencer never sequences
/// one op id twice).
const OP_IDS_KEPT: usize = 10_000;

/// An op id the server sequenced a second time: the op must not apply
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an op id was sequenced twice (replayed op)")]
pub(super) struct ReplayedOp;

impl DocSync {
    pub(super) fn after_integrate(
        &mut self,
        keys: &mut DocKeys<'_>,
        seq: u64,
        authored: bool,
    ) -> Result<(), Failure> {
        let session = joined(&self.phase)?;
        if seq.is_multiple_of(self.config.digest_every)
            && let Some(kv) = keys.ring().current_version(&self.kid)
            && let Some(key) = keys.ring().get(&self.kid, kv)
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
            let (ring, rng) = keys.sealing();
            let sealed =
                payload::seal_snapshot_with_rng(ring, &self.kid, &self.doc_id, seq, session.canonical(), rng)
                    .map_err(|e| Failure::Diverge(DivergeReason::CannotSeal(e.to_string())))?;
            let key_hint = self.key_hint.clone();
            self.push_request(DocRequest::Snapshot(doc::SnapshotUpload { seq, payload: sealed, key_hint }));
        }
        Ok(())
    }

    /// Records an integrated op id; one seen before means the server
    /// sequenced an op twice (a replay), which must not apply again.
    pub(super) fn remember_op_id(&mut self, op_id: &str) -> Result<(), ReplayedOp> {
        if !self.seen_op_id_set.insert(op_id.to_owned()) {
            return Err(ReplayedOp);
        }
        self.seen_op_ids.push_back(op_id.to_owned());
        if self.seen_op_ids.len() > OP_IDS_KEPT
            && let Some(oldest) = self.seen_op_ids.pop_front()
        {
            self.seen_op_id_set.remove(&oldest);
        }
        Ok(())
    }

    pub(super) fn handle_digest(&mut self, seq: u64, kv: u32, digest: String) -> Result<(), Failure> {
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

    pub(super) fn diverge(&mut self, reason: DivergeReason) {
        let session = self.phase.take_session();
        self.inbox.clear();
        self.early.clear();
        let unsent = session.as_ref().and_then(|s| s.pending_changes().ok().flatten());
        let seq = session.as_ref().map_or(0, DocSession::seq);
        self.phase = Phase::Diverged { session };
        self.events.push_back(DocClientEvent::Diverged { seq, reason, unsent });
    }
}

/// Keeps at most [`DIGESTS_KEPT`] entries, dropping the oldest.
fn remember(map: &mut BTreeMap<u64, (u32, String)>, seq: u64, entry: (u32, String)) {
    map.insert(seq, entry);
    while map.len() > DIGESTS_KEPT {
        map.pop_first();
    }
}
