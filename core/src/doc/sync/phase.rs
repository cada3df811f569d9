//! Where a document client is ([`Phase`]), with the document session
//! each phase owns.

use crate::ot::session::DocSession;

/// Where the client is.
#[derive(Debug)]
pub(super) enum Phase {
    /// Not joined: new, or restarted after divergence.
    Idle,
    /// Waiting for `doc-state`; `since` is what was asked. A rejoin (or the
    /// next page of a join) continues `session`; a join from a snapshot
    /// has none yet.
    Joining { since: Option<u64>, session: Option<DocSession> },
    /// Joined: live ops apply to `session`.
    Ready { session: DocSession },
    /// Stopped for good (until `restart`); the session stays readable.
    Diverged { session: Option<DocSession> },
}

impl Phase {
    pub(super) fn session(&self) -> Option<&DocSession> {
        match self {
            Phase::Idle => None,
            Phase::Ready { session } => Some(session),
            Phase::Joining { session, .. } | Phase::Diverged { session } => session.as_ref(),
        }
    }

    pub(super) fn session_mut(&mut self) -> Option<&mut DocSession> {
        match self {
            Phase::Idle => None,
            Phase::Ready { session } => Some(session),
            Phase::Joining { session, .. } | Phase::Diverged { session } => session.as_mut(),
        }
    }

    /// Moves the session out, leaving `Idle` (the caller sets the next phase).
    pub(super) fn take_session(&mut self) -> Option<DocSession> {
        match std::mem::replace(self, Phase::Idle) {
            Phase::Idle => None,
            Phase::Ready { session } => Some(session),
            Phase::Joining { session, .. } | Phase::Diverged { session } => session,
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        matches!(self, Phase::Ready { .. })
    }

    pub(super) fn is_diverged(&self) -> bool {
        matches!(self, Phase::Diverged { .. })
    }

    /// What a join in progress asked for.
    pub(super) fn joining_since(&self) -> Option<Option<u64>> {
        match self {
            Phase::Joining { since, .. } => Some(*since),
            _ => None,
        }
    }
}
