//! What others sent: sequenced ops (integrated in order; one that cannot
//! be opened or does not apply is skipped as every client skips it) and
//! cursors (moved into this client's view).

use serde_json::Value;

use super::{DocSync, Failure, WireOp, joined, joined_mut};
use crate::crypto::CryptoError;
use crate::doc::events::{DocClientEvent, SkipReason};
use crate::doc::payload::{self, PayloadError};
use crate::keys::DocKeys;
use crate::ot::session::{DocEvent as SessionEvent, Integrated};

impl DocSync {
    pub(super) fn handle_op(&mut self, keys: &mut DocKeys<'_>, op: &WireOp) -> Result<(), Failure> {
        let seq = self.seq();
        if op.seq <= seq {
            return Ok(()); // already integrated (join overlap)
        }
        if op.seq != seq + 1 {
            self.join(keys); // a gap: catch up
            return Ok(());
        }
        self.integrate_op(keys, op, true)
    }

    /// Integrates sequenced op `op`: ours (an ack) or another client's.
    /// An op that cannot be opened or does not apply is skipped, as every
    /// client skips it (docs/ot.md, "Ops that do not apply"); only a
    /// missing key stops processing (until the key comes, or the app
    /// refuses it, which the owner reports through [`DocSync::keys_changed`]).
    pub(super) fn integrate_op(
        &mut self,
        keys: &mut DocKeys<'_>,
        op: &WireOp,
        live: bool,
    ) -> Result<(), Failure> {
        if self.in_flight_op_id().as_deref() == Some(op.op_id.as_str()) {
            return self.handle_ack(keys, &op.op_id, op.seq);
        }
        let opened = match payload::open_op(keys.ring(), &self.doc_id, op.base, &op.op_id, &op.payload) {
            Err(PayloadError::Crypto(CryptoError::UnknownKey { kid, kv })) => {
                if !keys.is_refused(&kid, kv) {
                    return Err(Failure::NeedKey { kid, kv: Some(kv) });
                }
                Err(SkipReason::KeyRefused { kid, kv })
            }
            opened => opened.map_err(|e| SkipReason::Unreadable(e.to_string())),
        };
        // A replayed op id (a sequencer never sequences one twice) is
        // skipped too rather than applied again.
        let opened = opened.and_then(|delta| {
            self.remember_op_id(&op.op_id).map_err(|_| SkipReason::Replayed).map(|()| delta)
        });
        let session = joined_mut(&mut self.phase)?;
        let outcome = match opened {
            Ok(delta) => session.handle_remote(op.seq, op.base, &delta)?,
            Err(reason) => {
                session.skip_remote(op.seq)?;
                self.report_skip(op, reason);
                return self.after_integrate(keys, op.seq, false);
            }
        };
        if let Integrated::Skipped(err) = outcome {
            self.report_skip(op, SkipReason::DoesNotApply(err));
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
        self.after_integrate(keys, op.seq, false)
    }

    fn report_skip(&mut self, op: &WireOp, reason: SkipReason) {
        self.events.push_back(DocClientEvent::Skipped {
            seq: op.seq,
            op_id: op.op_id.clone(),
            user_id: op.user_id.clone(),
            reason,
        });
    }

    pub(super) fn handle_cursor(
        &mut self,
        keys: &DocKeys<'_>,
        user_id: Option<String>,
        seq: u64,
        envelope: &Value,
    ) -> Result<(), Failure> {
        match payload::open_cursor(keys.ring(), &self.doc_id, seq, envelope) {
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
}
