//! Joining: the join request (paged, from a kept snapshot or the whole
//! history), settling the session key against the document's recorded
//! hint, building the session from a join state, and becoming ready.

use super::payload::{self, PayloadError};
use super::phase::Phase;
use super::{DocSync, Failure, WireState, bad_remote, joined_mut, no_session};
use crate::crypto::CryptoError;
use crate::doc::events::DocClientEvent;
use crate::keys::DocKeys;
use crate::ot::Delta;
use crate::ot::session::DocSession;
use crate::protocol::doc::{self, DocRequest};

impl DocSync {
    pub(super) fn send_join(&mut self, keys: &DocKeys<'_>, since: Option<u64>) {
        self.send_join_from(keys, since, None);
    }

    /// A join, from the kept snapshot at `snapshot` when given.
    fn send_join_from(&mut self, keys: &DocKeys<'_>, since: Option<u64>, snapshot: Option<u64>) {
        // Ask whether our in-flight op was sequenced, in case the history
        // after `since` is gone.
        let op_id = self.in_flight_op_id();
        let session = self.phase.take_session();
        self.phase = Phase::Joining { since, session };
        // With a key to seal with whose hint we know, claim it: recorded
        // if the document is new; the answer names the session either way.
        let key_hint = self.key_hint.clone().filter(|_| self.has_session_key(keys));
        self.claimed = key_hint.is_some();
        self.push_request(DocRequest::Join(doc::Join { since, op_id, snapshot, key_hint }));
    }

    pub(super) fn has_session_key(&self, keys: &DocKeys<'_>) -> bool {
        keys.ring().current_version(&self.kid).is_some()
    }

    /// Settles the key to seal with against the document's recorded
    /// session hint before a join state is used. `Ok(false)`: the state
    /// was answered by a new join (one that claims the hint of the key
    /// that just came); `NeedKey` holds the state until the key comes.
    fn settle_session_key(
        &mut self,
        keys: &mut DocKeys<'_>,
        state: &WireState,
        since: Option<u64>,
    ) -> Result<bool, Failure> {
        let snapshot_hint = state.snapshot.as_ref().and_then(|s| s.key_hint.clone());
        self.doc_key_hint = state.key_hint.clone().or(snapshot_hint);
        let need_key = Failure::NeedKey { kid: self.kid.clone(), kv: None };
        if !self.has_session_key(keys) {
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
                self.send_join(keys, since);
                Ok(false)
            }
            // Another session was recorded (another client's claim came
            // first, or the app's hint is stale): our key cannot talk to
            // the others. Ask for the recorded session's key instead.
            (Some(recorded), Some(ours)) if recorded != ours => {
                let ring = keys.ring_mut();
                for kv in ring.versions(&self.kid) {
                    ring.remove_version(&self.kid, kv);
                }
                self.key_hint = Some(recorded.clone());
                Err(need_key)
            }
            _ => Ok(true),
        }
    }

    pub(super) fn handle_state(
        &mut self,
        keys: &mut DocKeys<'_>,
        state: &WireState,
        since: Option<u64>,
    ) -> Result<(), Failure> {
        if !self.settle_session_key(keys, state, since)? {
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
                    self.send_join(keys, None);
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
                            payload::open_snapshot(keys.ring(), &self.doc_id, s.seq, &s.payload)
                        };
                        match opened {
                            Ok(document) => (document, s.seq),
                            Err(PayloadError::Crypto(CryptoError::UnknownKey { kid, kv }))
                                if !keys.is_refused(&kid, kv) =>
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
                                    Some(older) => self.send_join_from(keys, None, Some(older)),
                                    None => {
                                        self.bad_snapshots.insert(0);
                                        self.send_join_from(keys, Some(0), None);
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
            self.integrate_op(keys, op, !self.fresh_join)?;
        }
        let seq = self.seq();
        // The server pages joins by op count and bytes: a page that ends
        // before the head is continued from where it ended.
        if !state.ops.is_empty() && seq < state.head {
            self.send_join(keys, Some(seq));
            return Ok(());
        }
        self.become_ready(keys)
    }

    fn become_ready(&mut self, keys: &mut DocKeys<'_>) -> Result<(), Failure> {
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
            self.handle(keys, &early)?;
        }
        // The in-flight op goes out again now: a retry still timed from a
        // refusal before the join would send a second copy.
        self.retry_at = None;
        if let Some(session) = self.phase.session_mut() {
            session.resubmit();
        }
        Ok(())
    }
}
