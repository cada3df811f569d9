//! The errors foreign code sees: one flat enum for calls, one for the
//! app's callbacks.

use sealcast_core::client::{ClientError, CommandError};
use sealcast_core::crypto::CryptoError;
use sealcast_core::doc::DocClientError;
use sealcast_core::ot::OtError;
use sealcast_net::NetError;

/// Why a call failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SealcastError {
    /// A bad argument: JSON, channel or event name, key length.
    #[error("invalid: {detail}")]
    Invalid {
        /// What was wrong.
        detail: String,
    },
    /// The client is not connected.
    #[error("not connected")]
    NotConnected,
    /// The channel is not subscribed.
    #[error("not subscribed to {channel}")]
    NotSubscribed {
        /// The channel.
        channel: String,
    },
    /// Sealing or opening failed; `code` is stable (docs/envelope.md).
    /// (Fields are named `detail`, not `message`, which Kotlin and Swift
    /// errors already have.)
    #[error("{detail}")]
    Crypto {
        /// Stable error code, e.g. `unknown_key`, `decrypt_failed`.
        code: String,
        /// Human-readable message.
        detail: String,
    },
    /// A delta could not be parsed or applied.
    #[error("{detail}")]
    Delta {
        /// Why.
        detail: String,
    },
    /// A document refused the call (not joined yet, no such document…).
    #[error("{detail}")]
    Document {
        /// Why.
        detail: String,
    },
    /// The document diverged: restart it.
    #[error("the document session stopped after divergence: restart it")]
    Diverged,
    /// Too many sealed events already wait for keys (the key provider is
    /// slow or failing): retry later.
    #[error("{detail}")]
    Busy {
        /// Why.
        detail: String,
    },
    /// Bad client configuration (URL, certificates).
    #[error("{detail}")]
    Config {
        /// Why.
        detail: String,
    },
}

impl SealcastError {
    pub(crate) fn invalid(message: impl ToString) -> SealcastError {
        SealcastError::Invalid { detail: message.to_string() }
    }
}

impl From<CryptoError> for SealcastError {
    fn from(err: CryptoError) -> SealcastError {
        SealcastError::Crypto { code: err.code().to_owned(), detail: err.to_string() }
    }
}

impl From<OtError> for SealcastError {
    fn from(err: OtError) -> SealcastError {
        SealcastError::Delta { detail: err.to_string() }
    }
}

impl From<ClientError> for SealcastError {
    fn from(err: ClientError) -> SealcastError {
        match err {
            ClientError::NotConnected => SealcastError::NotConnected,
            ClientError::NotSubscribed(channel) => SealcastError::NotSubscribed { channel },
            err @ ClientError::Invalid(_) => SealcastError::invalid(err),
        }
    }
}

impl From<DocClientError> for SealcastError {
    fn from(err: DocClientError) -> SealcastError {
        match err {
            DocClientError::Diverged => SealcastError::Diverged,
            DocClientError::Crypto(err) => err.into(),
            err @ (DocClientError::NotReady
            | DocClientError::Session(_)
            | DocClientError::Version(_)
            | DocClientError::Malformed(_)) => SealcastError::Document { detail: err.to_string() },
        }
    }
}

impl From<CommandError> for SealcastError {
    fn from(err: CommandError) -> SealcastError {
        match err {
            CommandError::Client(err) => err.into(),
            CommandError::Crypto(err) => err.into(),
            CommandError::Document(err) => err.into(),
            CommandError::Busy(_) => SealcastError::Busy { detail: err.to_string() },
            CommandError::NoDocument(_) => SealcastError::Document { detail: err.to_string() },
        }
    }
}

impl From<NetError> for SealcastError {
    fn from(err: NetError) -> SealcastError {
        match err {
            NetError::BadUrl { .. }
            | NetError::BadRootCertificate { .. }
            | NetError::Tls(_)
            | NetError::PlatformTrust(_) => SealcastError::Config { detail: err.to_string() },
        }
    }
}

/// What the app's callbacks (authorizer, key provider) return on failure.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    /// The callback failed for good: no such key or version, or this user
    /// may not have it (a key provider's refusal is final: what waited
    /// for the key is reported, an op naming it is skipped).
    #[error("{detail}")]
    Failed {
        /// Why.
        detail: String,
    },
    /// A key provider cannot answer now (its key server is unreachable,
    /// the device is offline): counted as no answer yet, so what waits
    /// for the key goes on waiting until `key_timeout` (a document then
    /// asks again) and no op is skipped for a passing outage. An
    /// authorizer's `Unavailable` fails the subscription like `Failed`.
    #[error("unavailable: {detail}")]
    Unavailable {
        /// Why.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> CallbackError {
        CallbackError::Failed { detail: err.reason }
    }
}
