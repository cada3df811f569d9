//! What can go wrong, as types: errors of calls the app makes, and why a log
//! entry was skipped (every member skips the same entries for the same
//! reasons).

/// An error from a call the app or driver made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// Bytes that do not parse as the named thing.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A signature that does not verify (the named thing was not signed by
    /// who it claims).
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
    /// The certificate is not for this device's key.
    #[error("the certificate does not name this device's key")]
    WrongKey,
    /// The roster is for another channel, older than the group's, or does not
    /// list this device.
    #[error("roster refused: {0}")]
    Roster(&'static str),
    /// The call needs this device to be in the group.
    #[error("not a member of the group")]
    NotMember,
    /// The group already exists (started by someone, or this device is in it).
    #[error("the group already exists")]
    AlreadyStarted,
    /// A commit of this device is on its way through the log.
    #[error("a commit is already in flight")]
    CommitInFlight,
    /// openmls refused (a bug or storage failure on this device, never
    /// caused by another party's input).
    #[error("mls: {0}")]
    Mls(String),
}

impl GroupError {
    pub(crate) fn mls(error: impl std::fmt::Display) -> Self {
        Self::Mls(error.to_string())
    }
}

/// Why a log entry did not change the group. Every member in the same state
/// skips the same entry for the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a log entry (or an MLS message that does not parse).
    Malformed,
    /// For an older generation of the group, or another group.
    OtherGroup,
    /// A commit for an epoch that is not the current one: it lost to the
    /// commit before it, or it is a copy.
    StaleEpoch,
    /// The commit failed MLS validation (signature, tags, tree).
    Invalid,
    /// The commit is valid MLS but the app did not authorize it: an add of a
    /// device the roster does not list, a removal of one it lists, a roster
    /// older than the group's or not signed by the app, a certificate the app
    /// did not sign, or a proposal type members do not accept.
    Unauthorized,
    /// A genesis whose certificate, roster or signature does not verify.
    BadGenesis,
    /// A welcome for other devices (or one this device cannot use).
    NotForUs,
    /// A message this device does not expect in its state (a welcome while a
    /// member, a commit before joining).
    Unexpected,
    /// A copy of an entry already applied (a genesis seen before).
    Replayed,
    /// A member's commit whose update path this device cannot decrypt or
    /// check (a committer that sent garbage to some members): the device
    /// leaves the generation ([`crate::GroupEvent::Outside`]) rather than
    /// stay on an epoch the others left.
    CannotFollow,
}
