//! [`DocumentEvent`]: what the client's listener hears about an open
//! document (`on_document`), converted from the core's `DocClientEvent`.
//! A leaf module, so the client (which delivers events) and the document
//! API (which opens documents) do not import each other.

use sealcast_core::doc::DocClientEvent;
use sealcast_core::ot::Delta;

/// Something that happened to an open document.
#[derive(uniffi::Enum, Debug, Clone, PartialEq)]
pub enum DocumentEvent {
    /// Joined, rejoined or reset: replace the editor's content with
    /// `view_json`; the editor is at `version`. `unsent_json`: local
    /// changes that could not be carried over; offer them to the user.
    Ready {
        /// The document (Quill delta JSON).
        view_json: String,
        /// Last sequence number integrated.
        seq: u64,
        /// Changes not carried over, if any.
        unsent_json: Option<String>,
        /// The version of `view_json`.
        version: u64,
    },
    /// A change the editor did not make (another user's, an undo/redo, or
    /// the catch-up after an edit at an older version). Apply it only when
    /// the editor is at `base`; it is then at `version`. Ignore it
    /// otherwise (a later change replaces it).
    RemoteChange {
        /// The change (Quill delta JSON).
        delta_json: String,
        /// The version it applies to.
        base: u64,
        /// The version it produces.
        version: u64,
    },
    /// A sequenced op did not apply and was skipped by every client (the
    /// document goes on).
    Skipped {
        /// Its sequence number.
        seq: u64,
        /// Its op id.
        op_id: String,
        /// Its author, when the server knows it.
        user_id: Option<String>,
        /// Why.
        reason: String,
    },
    /// Another user's cursor.
    Cursor {
        /// Their user id (presence documents).
        user_id: Option<String>,
        /// Selection start.
        index: u64,
        /// Selection length.
        length: u64,
    },
    /// Another user's cursor did not open.
    CursorError {
        /// Their user id.
        user_id: Option<String>,
        /// Why.
        message: String,
    },
    /// The key provider refused the document's session key (the document
    /// closes; an op under a refused version is `Skipped` instead).
    KeyNeeded {
        /// Key id.
        kid: String,
        /// Key version (none: the session key to seal with).
        kv: Option<u32>,
        /// The document session's key hint.
        key_hint: Option<String>,
    },
    /// The session stopped; input is refused until `restart_document`.
    Diverged {
        /// Where it was noticed.
        seq: u64,
        /// Why.
        reason: String,
        /// The user's unacknowledged changes (Quill delta JSON).
        unsent_json: Option<String>,
    },
    /// The server refused something. With `retry_in_ms` the op is
    /// resubmitted automatically after that wait; without it, a refused op
    /// was dropped and a `Ready` with `unsent_json` follows.
    Refused {
        /// Error code.
        code: String,
        /// Message.
        message: String,
        /// When the op is resubmitted, if it is.
        retry_in_ms: Option<u64>,
    },
}

pub(crate) fn json(delta: &Delta) -> String {
    delta.to_json_string()
}

pub(crate) fn document_event(event: DocClientEvent) -> DocumentEvent {
    match event {
        DocClientEvent::Ready { view, seq, unsent, version } => DocumentEvent::Ready {
            view_json: json(&view),
            seq,
            unsent_json: unsent.as_ref().map(json),
            version,
        },
        DocClientEvent::RemoteChange { change, base, version } => {
            DocumentEvent::RemoteChange { delta_json: json(&change), base, version }
        }
        DocClientEvent::Skipped { seq, op_id, user_id, reason } => {
            DocumentEvent::Skipped { seq, op_id, user_id, reason: reason.to_string() }
        }
        DocClientEvent::Cursor { user_id, index, length } => {
            DocumentEvent::Cursor { user_id, index: index as u64, length: length as u64 }
        }
        DocClientEvent::CursorError { user_id, error } => {
            DocumentEvent::CursorError { user_id, message: error }
        }
        DocClientEvent::KeyNeeded { kid, kv, key_hint } => DocumentEvent::KeyNeeded { kid, kv, key_hint },
        DocClientEvent::Diverged { seq, reason, unsent } => DocumentEvent::Diverged {
            seq,
            reason: reason.to_string(),
            unsent_json: unsent.as_ref().map(json),
        },
        DocClientEvent::Refused { code, message, retry_in } => DocumentEvent::Refused {
            code: code.to_string(),
            message,
            retry_in_ms: retry_in.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        },
    }
}
