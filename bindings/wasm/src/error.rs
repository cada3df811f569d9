//! Errors thrown to JavaScript: `Error("CODE: message")`, so a caller can
//! branch on the code without parsing prose.

use sealcast_core::client::{ClientError, CommandError};
use sealcast_core::crypto::CryptoError;
use sealcast_core::doc::DocClientError;
use sealcast_core::ot::OtError;
use wasm_bindgen::JsError;

/// A JS error `CODE: message`.
pub(crate) fn coded(code: &str, message: impl std::fmt::Display) -> JsError {
    JsError::new(&format!("{code}: {message}"))
}

/// Input that is not what the call takes (bad JSON, bad base64…).
pub(crate) fn invalid(message: impl std::fmt::Display) -> JsError {
    coded("invalid", message)
}

pub(crate) fn crypto(err: CryptoError) -> JsError {
    coded(err.code(), err)
}

pub(crate) fn ot(err: OtError) -> JsError {
    coded("invalid_delta", err)
}

pub(crate) fn document(err: DocClientError) -> JsError {
    let code = match &err {
        DocClientError::NotReady => "not_ready",
        DocClientError::Diverged => "diverged",
        DocClientError::Session(_)
        | DocClientError::Version(_)
        | DocClientError::Crypto(_)
        | DocClientError::Malformed(_) => "document",
    };
    coded(code, err)
}

pub(crate) fn command(err: CommandError) -> JsError {
    match err {
        CommandError::Client(err) => {
            let code = match &err {
                ClientError::NotConnected => "not_connected",
                ClientError::NotSubscribed(_) => "not_subscribed",
                ClientError::Invalid(_) => "refused",
            };
            coded(code, err)
        }
        CommandError::Crypto(err) => crypto(err),
        CommandError::Document(err) => document(err),
        CommandError::NoDocument(doc_id) => coded("no_document", format!("document {doc_id} is not open")),
        CommandError::Busy(n) => {
            coded("busy", format!("{n} sealed events or key requests already wait for keys"))
        }
    }
}

/// Parses JSON text from JS.
pub(crate) fn parse(text: &str) -> Result<serde_json::Value, JsError> {
    serde_json::from_str(text).map_err(invalid)
}
