//! [`ServerError`]: what the server tells a client with `pusher:error`.
//!
//! Subscription refusals travel as `pusher:subscription_error` and document
//! refusals as `sealcast_internal:doc-error` (their handlers build those);
//! everything else a connection can get wrong is one of these, each with
//! its Pusher code.

use sealcast_core::protocol::codes;

use super::limits::FrameKind;

/// A refusal sent as `pusher:error` (the connection stays open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// Not a JSON object with a string `event`.
    #[error("malformed frame: expected a JSON object with a string `event`")]
    Malformed,
    /// A binary WebSocket message.
    #[error("binary frames are not part of the Pusher protocol")]
    Binary,
    /// A frame whose `data` does not have the command's shape.
    #[error("{0}")]
    BadData(String),
    /// Over the frame kind's rate (4301).
    #[error("{} rate limit exceeded", .0.name())]
    RateLimited(FrameKind),
    /// Over the connection's rate of frames of any kind (4301).
    #[error("frame rate limit exceeded")]
    FrameRateLimited,
    /// A client event that cannot be relayed (4300).
    #[error("{0}")]
    ClientEventRejected(&'static str),
    /// A client event with a missing or bad channel (4300).
    #[error("{0}")]
    ClientEventChannel(String),
    /// A `pusher:signin` that does not verify (4009).
    #[error("{0}")]
    SigninRefused(&'static str),
}

impl ServerError {
    /// The Pusher code sent with the error, if any.
    pub fn code(&self) -> Option<u16> {
        match self {
            ServerError::Malformed | ServerError::Binary | ServerError::BadData(_) => None,
            ServerError::RateLimited(_) | ServerError::FrameRateLimited => {
                Some(codes::CLIENT_EVENT_RATE_LIMIT)
            }
            ServerError::ClientEventRejected(_) | ServerError::ClientEventChannel(_) => {
                Some(codes::CLIENT_EVENT_REJECTED)
            }
            ServerError::SigninRefused(_) => Some(codes::UNAUTHORIZED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let limited = ServerError::RateLimited(FrameKind::DocDigest);
        assert_eq!(
            (limited.code(), limited.to_string().as_str()),
            (Some(4301), "document digest rate limit exceeded")
        );
        assert_eq!(ServerError::Malformed.code(), None);
        assert_eq!(ServerError::SigninRefused("no").code(), Some(4009));
    }
}
