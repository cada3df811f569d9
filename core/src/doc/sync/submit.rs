//! Submitting: sealing the session's ops under unguessable op ids,
//! acknowledgements, and the server's refusals with their retries (a
//! growing wait for `rate_limited`/`storage`, a rejoin for `resync` and
//! `conflict`, the pending edits handed back for a refusal for good).

use std::time::Duration;

use super::{DocSync, Failure, bad_remote, joined_mut};
use crate::doc::events::{DivergeReason, DocClientEvent, SkipReason};
use crate::doc::payload;
use crate::keys::DocKeys;
use crate::ot::session::{DocSession, Integrated, SessionError};
use crate::protocol::doc::{self, DocErrorCode, DocRequest};
use crate::time::Instant;

/// First wait before resubmitting an op the server refused for now
/// (`rate_limited`, `storage`); doubled per refusal up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between resubmissions.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

impl DocSync {
    /// Sends the in-flight op again now, under the same op id, or the join
    /// the server refused for now (refusals are retried automatically;
    /// this skips the wait).
    pub fn resubmit(&mut self, keys: &mut DocKeys<'_>) {
        self.retry_at = None;
        if let Some(since) = self.phase.joining_since() {
            return self.send_join(keys, since);
        }
        if self.phase.is_ready()
            && let Some(session) = self.phase.session_mut()
        {
            session.resubmit();
            self.flush_submissions(keys);
        }
    }

    pub(super) fn joining(&self) -> bool {
        self.phase.joining_since().is_some()
    }

    pub(super) fn handle_error(&mut self, keys: &mut DocKeys<'_>, error: &doc::DocError, now: Instant) {
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
                self.join(keys);
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
                    self.flush_submissions(keys);
                } else {
                    self.conflicted = op_id;
                    self.join(keys);
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

    /// The server sequenced our in-flight op (an ack, or our op met in a
    /// join's history).
    pub(super) fn handle_ack(
        &mut self,
        keys: &mut DocKeys<'_>,
        op_id: &str,
        seq: u64,
    ) -> Result<(), Failure> {
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
                self.remember_op_id(op_id).map_err(|replayed| bad_remote(&replayed.to_string()))?;
                self.after_integrate(keys, seq, true)
            }
            Ok(Integrated::SkippedOwn { error, unsent }) => {
                self.retries = 0;
                self.retry_at = None;
                let reason = SkipReason::DoesNotApply(error);
                let (op_id, user_id) = (op_id.to_owned(), None);
                self.events.push_back(DocClientEvent::Skipped { seq, op_id, user_id, reason });
                self.reset_view(unsent);
                self.after_integrate(keys, seq, true)
            }
            Err(SessionError::OutOfOrder { .. }) => {
                self.join(keys); // ops before ours were missed: catch up
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Seals and queues the session's submissions (only when joined: a
    /// rejoin resubmits with a current base). Paced: after a submission the
    /// session holds what is typed next until `submit_interval` has passed
    /// ([`DocSync::release_if_due`]).
    pub(super) fn flush_submissions(&mut self, keys: &mut DocKeys<'_>) {
        if !self.phase.is_ready() {
            return;
        }
        if self.release_at.is_none()
            && let Some(session) = self.phase.session_mut()
        {
            // No pacing wait running (a new session, or it is over).
            session.release();
        }
        let mut sent = false;
        while let Some(submission) = self.phase.session_mut().and_then(DocSession::poll_transmit) {
            sent = true;
            let op_id = self.op_id(submission.op_id);
            let (ring, rng) = keys.sealing();
            match payload::seal_op_with_rng(
                ring,
                &self.kid,
                &self.doc_id,
                submission.base,
                &op_id,
                &submission.op,
                rng,
            ) {
                Ok(sealed) => {
                    let submit = doc::Submit { base: submission.base, op_id, payload: sealed };
                    self.push_request(DocRequest::Submit(submit));
                }
                Err(err) => return self.diverge(DivergeReason::CannotSeal(err.to_string())),
            }
        }
        let interval = self.config.submit_interval;
        if sent
            && !interval.is_zero()
            && let Some(now) = self.now
            && let Some(session) = self.phase.session_mut()
        {
            session.hold();
            self.release_at = Some(now + interval);
        }
    }

    /// Ends a pacing wait that is over: what was typed meanwhile is
    /// submitted (as one op) once the op in flight is acknowledged.
    pub(super) fn release_if_due(&mut self, keys: &mut DocKeys<'_>) {
        if let (Some(at), Some(now)) = (self.release_at, self.now)
            && at <= now
        {
            self.release_at = None;
            self.flush_submissions(keys);
        }
    }

    pub(super) fn in_flight_op_id(&self) -> Option<String> {
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

    pub(super) fn push_request(&mut self, request: DocRequest) {
        self.outgoing.push_back(request.message());
    }
}
