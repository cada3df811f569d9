//! [`DocSession`]: one client's view of a collaborative document, sans-IO.
//!
//! The server (a blind sequencer) gives every submitted op the next
//! sequence number and stores it as sent: `{seq, base, op}`, where `base` is
//! the last sequence the author had integrated. It never transforms. Every
//! client turns the raw op into its *canonical* form, the op as it applies
//! to the document after op `seq - 1`, by transforming it through the
//! canonical ops `base+1 .. seq-1` in order, each of which, being earlier,
//! wins insert ties (`priority = true`). Since every client runs the same
//! deterministic computation on the same inputs, all compute the same
//! canonical history without the server's help (Tiny's RTC design,
//! `shared/seeds/002_*`; docs/ot.md).
//!
//! Locally the session follows the ot.js client: at most one op in flight
//! (sent, not yet acknowledged) and a buffer composing everything typed
//! meanwhile. Remote ops are transformed past both so the app's view stays
//! current; the in-flight op, transformed the same way, is exactly its
//! canonical form when its acknowledgement arrives.
//!
//! Calling order: [`DocSession::local_edit`] for the user's changes,
//! [`DocSession::handle_remote`] / [`DocSession::handle_ack`] for server
//! messages (in the order the server sent them), then drain
//! [`DocSession::poll_transmit`] (ops to submit) and
//! [`DocSession::poll_event`] (changes for the editor).

use std::collections::VecDeque;

use super::{Delta, OtError};

/// Canonical ops kept for transforming late-based remote ops.
pub const DEFAULT_HISTORY: usize = 10_000;

/// Why the session refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A delta could not be applied or transformed (caused by: the caller for
    /// local edits, the peer for remote ops).
    #[error(transparent)]
    Ot(#[from] OtError),
    /// A remote op is not the next sequence number (caused by: a missed
    /// message): resynchronize from a snapshot or "since".
    #[error("expected op {expected}, got {got}: resynchronize")]
    OutOfOrder {
        /// The sequence number expected next.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// A remote op's base is older than the history kept, or newer than
    /// the op itself (caused by: peer, or a client far behind): resynchronize.
    #[error("op {seq} has base {base}, outside the history kept: resynchronize")]
    BaseOutOfRange {
        /// The op's sequence number.
        seq: u64,
        /// Its base.
        base: u64,
    },
    /// An acknowledgement for an op that is not in flight (caused by: peer).
    #[error("acknowledgement for op {op_id}, which is not in flight")]
    UnexpectedAck {
        /// The op id acknowledged.
        op_id: u64,
    },
}

/// The user's own changes that can be undone or redone, as inverse deltas
/// against the current view, newest last. Remote changes are transformed
/// into them (as Quill's history module does), so undo reverts only what
/// this user did, wherever remote edits moved it.
#[derive(Debug, Clone, Default)]
struct UndoStacks {
    undo: Vec<Delta>,
    redo: Vec<Delta>,
}

impl UndoStacks {
    fn record(&mut self, inverse: Delta) {
        if !inverse.is_empty() {
            self.undo.push(inverse);
            if self.undo.len() > DEFAULT_UNDO_DEPTH {
                self.undo.remove(0);
            }
        }
        self.redo.clear();
    }

    /// Moves both stacks past `remote`, a change just applied to the view.
    fn transform(&mut self, remote: &Delta) -> Result<(), OtError> {
        for stack in [&mut self.undo, &mut self.redo] {
            let mut remote = remote.clone();
            for i in (0..stack.len()).rev() {
                let item = std::mem::take(&mut stack[i]);
                stack[i] = remote.transform(&item, true)?;
                remote = item.transform(&remote, false)?;
            }
            stack.retain(|item| !item.is_empty());
        }
        Ok(())
    }
}

/// Undo steps kept per direction.
pub const DEFAULT_UNDO_DEPTH: usize = 100;

/// What became of a sequenced op (remote, or our own at its ack).
#[derive(Debug, Clone, PartialEq)]
pub enum Integrated {
    /// Applied to the canonical document (a remote op's change to the view
    /// is queued as a [`DocEvent`]).
    Applied,
    /// The op does not apply to the canonical document at its sequence
    /// number (a buggy or malicious author). Every client decides this the
    /// same way from the same history, so every client treats it as a
    /// no-op: the sequence number advances, the document does not change
    /// (docs/ot.md, "Ops that do not apply").
    Skipped(OtError),
    /// Our own in-flight op was skipped that way (only a bug can cause
    /// this: it applied to our view when made). Every pending edit is
    /// dropped and returned, against the document before it.
    SkippedOwn {
        /// Why it does not apply.
        error: OtError,
        /// The edits dropped.
        unsent: Option<Delta>,
    },
}

/// An op to submit to the sequencer.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// Client op id: resubmitting the same id must not apply it twice.
    pub op_id: u64,
    /// The last sequence number integrated when the op was made.
    pub base: u64,
    /// The op, against the document at `base`.
    pub op: Delta,
}

/// Something the app (editor) must hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum DocEvent {
    /// A remote change, to apply to the editor's current content.
    RemoteChange(Delta),
}

#[derive(Debug, Clone)]
struct InFlight {
    op_id: u64,
    /// The op transformed past every remote op seen since it was sent.
    op: Delta,
}

/// One client's document state.
#[derive(Debug, Clone)]
pub struct DocSession {
    /// The canonical document after op `seq`.
    document: Delta,
    seq: u64,
    /// Canonical ops `(seq, op)`, oldest first, at most `history_limit`.
    history: VecDeque<(u64, Delta)>,
    history_limit: usize,
    in_flight: Option<InFlight>,
    buffer: Option<Delta>,
    /// Local changes wait in the buffer even with nothing in flight (the
    /// client paces its submissions: [`DocSession::hold`]).
    held: bool,
    next_op_id: u64,
    outbox: VecDeque<Submission>,
    events: VecDeque<DocEvent>,
    undo: UndoStacks,
}

impl DocSession {
    /// A session starting from `document` at sequence `seq` (a snapshot, or
    /// the empty document at 0). `first_op_id` should be unique per client
    /// session (e.g. random high bits), so resubmissions are recognizable.
    pub fn new(document: Delta, seq: u64, first_op_id: u64) -> Result<DocSession, SessionError> {
        if !document.is_document() {
            return Err(OtError::NotADocument.into());
        }
        Ok(DocSession {
            document,
            seq,
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY,
            in_flight: None,
            buffer: None,
            held: false,
            next_op_id: first_op_id,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            undo: UndoStacks::default(),
        })
    }

    /// The last sequence number integrated.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The canonical document at [`DocSession::seq`] (what every client
    /// agrees on; digests are computed over it).
    pub fn canonical(&self) -> &Delta {
        &self.document
    }

    /// What the user sees: the canonical document plus unacknowledged edits.
    pub fn view(&self) -> Result<Delta, SessionError> {
        let mut view = self.document.clone();
        if let Some(in_flight) = &self.in_flight {
            view = view.apply(&in_flight.op)?;
        }
        if let Some(buffer) = &self.buffer {
            view = view.apply(buffer)?;
        }
        Ok(view)
    }

    /// True when edits are waiting to be acknowledged or sent.
    pub fn has_pending(&self) -> bool {
        self.in_flight.is_some() || self.buffer.is_some()
    }

    /// The user's unacknowledged changes, as one delta against the canonical
    /// document (what is at stake if the session must be abandoned).
    pub fn pending_changes(&self) -> Result<Option<Delta>, SessionError> {
        Ok(match (&self.in_flight, &self.buffer) {
            (None, None) => None,
            (Some(f), None) => Some(f.op.clone()),
            (None, Some(b)) => Some(b.clone()),
            (Some(f), Some(b)) => Some(f.op.compose(b)?),
        })
    }

    /// A change the user made to the current [`DocSession::view`]; it
    /// becomes one undo step.
    pub fn local_edit(&mut self, change: Delta) -> Result<(), SessionError> {
        let inverse = self.submit_local(change)?;
        self.undo.record(inverse);
        Ok(())
    }

    /// Reverts the user's newest undoable change (transformed past remote
    /// edits since). Returns the change applied to the view, for the editor,
    /// or `None` when there is nothing to undo.
    pub fn undo(&mut self) -> Result<Option<Delta>, SessionError> {
        let Some(change) = self.undo.undo.pop() else { return Ok(None) };
        let inverse = self.submit_local(change.clone())?;
        self.undo.redo.push(inverse);
        Ok(Some(change))
    }

    /// Re-applies the newest undone change; `None` when there is none.
    pub fn redo(&mut self) -> Result<Option<Delta>, SessionError> {
        let Some(change) = self.undo.redo.pop() else { return Ok(None) };
        let inverse = self.submit_local(change.clone())?;
        self.undo.undo.push(inverse);
        Ok(Some(change))
    }

    /// Whether [`DocSession::undo`] / [`DocSession::redo`] have something to do.
    pub fn can_undo(&self) -> (bool, bool) {
        (!self.undo.undo.is_empty(), !self.undo.redo.is_empty())
    }

    /// Queues a local change and returns its inverse against the view.
    fn submit_local(&mut self, change: Delta) -> Result<Delta, SessionError> {
        let view = self.view()?;
        // Applying checks everything an op must satisfy against the current
        // document (lengths, surrogate pairs, embeds): an edit that does not
        // apply here would not apply for anyone, so it is refused before it
        // is sent rather than sequenced as a no-op.
        view.apply(&change)?;
        let inverse = change.invert(&view)?;
        if self.in_flight.is_none() && !self.held {
            self.send(change);
        } else {
            self.buffer = Some(match self.buffer.take() {
                Some(buffer) => buffer.compose(&change)?,
                None => change,
            });
        }
        Ok(inverse)
    }

    /// Another client's op, sequenced `seq` with base `base`. An op that
    /// does not apply is integrated as a no-op ([`Integrated::Skipped`]);
    /// errors are only for messages this client cannot place (out of
    /// order, base older than the history kept): resynchronize.
    pub fn handle_remote(&mut self, seq: u64, base: u64, op: &Delta) -> Result<Integrated, SessionError> {
        if seq != self.seq + 1 {
            return Err(SessionError::OutOfOrder { expected: self.seq + 1, got: seq });
        }
        if base >= seq {
            // Based on itself or later: no history can place it (the
            // server refuses these; every client skips them alike).
            return Ok(self.skip(seq, OtError::Malformed("op based on a sequence number not before it")));
        }
        let canonical = match self.canonicalize(seq, base, op) {
            Ok(canonical) => canonical,
            Err(SessionError::Ot(err)) => return Ok(self.skip(seq, err)),
            Err(err) => return Err(err),
        };
        // Move the remote op past our in-flight op and buffer (the remote op
        // is earlier in the total order, so it wins ties), and move those
        // past it in turn; nothing changes until the op is known to apply.
        let moved = (|| -> Result<(Delta, Option<Delta>, Option<Delta>), OtError> {
            let mut remote = canonical.clone();
            let mut in_flight = None;
            if let Some(pending) = &self.in_flight {
                in_flight = Some(remote.transform(&pending.op, true)?);
                remote = pending.op.transform(&remote, false)?;
            }
            let mut buffer = None;
            if let Some(pending) = &self.buffer {
                buffer = Some(remote.transform(pending, true)?);
                remote = pending.transform(&remote, false)?;
            }
            Ok((remote, in_flight, buffer))
        })();
        // Whether the op applies decides, as on every client; applying last
        // also keeps the document's old and new allocations adjacent (the
        // allocator fragments otherwise: +50% on a 70,000-unit document).
        let document = match self.document.apply(&canonical) {
            Ok(document) => document,
            Err(err) => return Ok(self.skip(seq, err)),
        };
        // Both apply to the same document, so the transforms cannot have
        // failed on valid input: an error here is our bug.
        let (remote, in_flight, buffer) = moved?;
        self.undo.transform(&remote)?;
        if let (Some(pending), Some(op)) = (&mut self.in_flight, in_flight) {
            pending.op = op;
        }
        if buffer.is_some() {
            self.buffer = buffer;
        }
        self.commit(seq, document, canonical);
        self.events.push_back(DocEvent::RemoteChange(remote));
        Ok(Integrated::Applied)
    }

    /// The server's acknowledgement: our in-flight op became `seq`.
    pub fn handle_ack(&mut self, op_id: u64, seq: u64) -> Result<Integrated, SessionError> {
        let Some(in_flight) = self.in_flight.take_if(|f| f.op_id == op_id) else {
            return Err(SessionError::UnexpectedAck { op_id });
        };
        if seq != self.seq + 1 {
            self.in_flight = Some(in_flight);
            return Err(SessionError::OutOfOrder { expected: self.seq + 1, got: seq });
        }
        // Every op before `seq` has been integrated and transformed into
        // it, so the in-flight op now is its canonical form. Every other
        // client computed the same form, so if it does not apply (it was
        // valid against our view when made, so only through a bug), we
        // skip it exactly as they do.
        match self.document.apply(&in_flight.op) {
            Ok(document) => self.commit(seq, document, in_flight.op),
            Err(error) => {
                let unsent = match self.buffer.take() {
                    Some(buffer) => in_flight.op.compose(&buffer).ok(),
                    None => Some(in_flight.op),
                };
                self.outbox.clear();
                self.undo = UndoStacks::default();
                let _ = self.skip(seq, error.clone());
                return Ok(Integrated::SkippedOwn { error, unsent });
            }
        }
        if !self.held
            && let Some(buffer) = self.buffer.take()
        {
            self.send(buffer);
        }
        Ok(Integrated::Applied)
    }

    /// Drops every unacknowledged edit (after the server refused the
    /// in-flight op for good) and returns them as one delta against the
    /// canonical document.
    pub fn take_pending(&mut self) -> Result<Option<Delta>, SessionError> {
        let pending = self.pending_changes()?;
        self.in_flight = None;
        self.buffer = None;
        self.outbox.clear();
        self.undo = UndoStacks::default();
        Ok(pending)
    }

    /// Op `seq` could not even be read (undecryptable, malformed, a
    /// replay): integrated as a no-op, as [`Integrated::Skipped`] ops are.
    pub fn skip_remote(&mut self, seq: u64) -> Result<(), SessionError> {
        if seq != self.seq + 1 {
            return Err(SessionError::OutOfOrder { expected: self.seq + 1, got: seq });
        }
        let _ = self.skip(seq, OtError::Malformed("unreadable op"));
        Ok(())
    }

    /// Gives the in-flight op a fresh op id and queues it again (after the
    /// server said its id belongs to someone else's op: ours was never
    /// sequenced).
    pub fn renumber_in_flight(&mut self) {
        let op_id = self.next_op_id;
        if let Some(in_flight) = &mut self.in_flight {
            self.next_op_id += 1;
            in_flight.op_id = op_id;
            self.resubmit();
        }
    }

    /// Moves a position in the view another client had at sequence
    /// `from_seq` into this client's view: through the canonical ops since
    /// (when known) and this client's unacknowledged edits. Used for remote
    /// cursors; the other client's own pending edits are unknown here, so
    /// this is the usual best effort.
    pub fn rebase_position(&self, from_seq: u64, mut index: usize) -> usize {
        for (_, op) in self.history.iter().filter(|(seq, _)| *seq > from_seq) {
            index = op.transform_position(index, false);
        }
        for pending in self.in_flight.iter().map(|f| &f.op).chain(&self.buffer) {
            index = pending.transform_position(index, false);
        }
        index
    }

    /// Local edits made while an op was in flight, not yet sent.
    pub fn buffered(&self) -> Option<&Delta> {
        self.buffer.as_ref()
    }

    /// The op id in flight, if any.
    pub fn in_flight_id(&self) -> Option<u64> {
        self.in_flight.as_ref().map(|f| f.op_id)
    }

    /// Queues the in-flight op again, under the same op id, against the
    /// current sequence (after a reconnect or a `resync` refusal: the op
    /// was not sequenced, or if it was, the server answers with its
    /// original sequence number).
    pub fn resubmit(&mut self) {
        if let Some(in_flight) = &self.in_flight {
            self.outbox.clear();
            self.outbox.push_back(Submission {
                op_id: in_flight.op_id,
                base: self.seq,
                op: in_flight.op.clone(),
            });
        }
    }

    /// Keeps local changes in the buffer (composed into one op) until
    /// [`DocSession::release`], even when nothing is in flight.
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// Ends a [`DocSession::hold`]: the buffer is submitted now if nothing
    /// is in flight, else when the in-flight op is acknowledged.
    pub fn release(&mut self) {
        self.held = false;
        if self.in_flight.is_none()
            && let Some(buffer) = self.buffer.take()
        {
            self.send(buffer);
        }
    }

    /// The next op to submit.
    pub fn poll_transmit(&mut self) -> Option<Submission> {
        self.outbox.pop_front()
    }

    /// The next change for the editor.
    pub fn poll_event(&mut self) -> Option<DocEvent> {
        self.events.pop_front()
    }

    /// The canonical form of raw op `seq` based on `base`: transformed
    /// through canonical ops `base+1 ..= self.seq`, each with priority.
    fn canonicalize(&self, seq: u64, base: u64, op: &Delta) -> Result<Delta, SessionError> {
        let out_of_range = SessionError::BaseOutOfRange { seq, base };
        if base > self.seq {
            return Err(out_of_range);
        }
        let oldest_needed = base + 1;
        let covered = self.history.front().map_or(self.seq + 1, |(first, _)| *first);
        if oldest_needed < covered && base < self.seq {
            return Err(out_of_range);
        }
        let mut op = op.clone();
        for (_, earlier) in self.history.iter().filter(|(k, _)| *k > base) {
            op = earlier.transform(&op, true)?;
        }
        Ok(op)
    }

    /// Records `canonical` as op `seq`, `document` being the result.
    fn commit(&mut self, seq: u64, document: Delta, canonical: Delta) {
        self.document = document;
        self.seq = seq;
        self.history.push_back((seq, canonical));
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
    }

    /// Integrates op `seq` as a no-op (an empty delta in the history, so
    /// later ops based before it transform through nothing).
    fn skip(&mut self, seq: u64, err: OtError) -> Integrated {
        let document = std::mem::take(&mut self.document);
        self.commit(seq, document, Delta::new());
        Integrated::Skipped(err)
    }

    fn send(&mut self, op: Delta) {
        let op_id = self.next_op_id;
        self.next_op_id += 1;
        self.outbox.push_back(Submission { op_id, base: self.seq, op: op.clone() });
        self.in_flight = Some(InFlight { op_id, op });
    }
}

#[cfg(test)]
mod tests;
