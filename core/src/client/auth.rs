//! The app's answer to an authorization request
//! ([`Event::NeedAuthorization`](super::Event::NeedAuthorization)): a
//! signed [`ChannelAuth`], or an [`AuthRefusal`].

/// A private or presence channel authorization (what a Pusher auth
/// endpoint returns; `auth` may also be a JWT for sealcast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAuth {
    /// `key:signature`, or a JWT.
    pub auth: String,
    /// Presence member data (JSON text), for presence channels with HMAC auth.
    pub channel_data: Option<String>,
}

/// Why the app's authorizer did not sign a channel (the answer to
/// [`Event::NeedAuthorization`](super::Event::NeedAuthorization)); the
/// subscription fails with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authorizer failed: {reason}")]
pub struct AuthRefusal {
    /// What the authorizer said (caused by: the app's policy or its
    /// backend).
    pub reason: String,
}

impl AuthRefusal {
    /// A refusal for `reason`.
    pub fn new(reason: impl Into<String>) -> AuthRefusal {
        AuthRefusal { reason: reason.into() }
    }
}
