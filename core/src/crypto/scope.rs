//! [`Scope`]: the context an envelope is bound to.
//!
//! A scope names where a sealed value belongs (which chat room and message,
//! which call and signaling event, which document op). It is authenticated
//! in the AAD but never transmitted, so an envelope copied into another room,
//! message, event or document fails to open. The kinds mirror the strong-
//! privacy guide's helpers (`encryptChatJson`, `encryptCallSignalJson`,
//! `encryptRealtimeJson`) plus documents.

use core::fmt;
use core::str::FromStr;

use super::CryptoError;

/// Longest scope field, in bytes.
pub const MAX_SCOPE_FIELD: usize = 1024;

/// The context an envelope is bound to. Construct with the checked
/// constructors ([`Scope::chat`] …) or parse `kind:field:…` ([`FromStr`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// A chat message: room id and message id.
    Chat {
        /// Room (conversation) id.
        room_id: String,
        /// Message id, unique within the room.
        message_id: String,
    },
    /// A call-signaling event (offer, answer, ICE candidate, media state).
    Call {
        /// Call id.
        call_id: String,
        /// Signaling event name, e.g. `call.offer`.
        event_name: String,
    },
    /// Any other private event: a scope, an id within it, an event name.
    Custom {
        /// Scope, e.g. `delivery`.
        scope: String,
        /// Id within the scope, e.g. `order-1001`.
        scope_id: String,
        /// Event name, e.g. `delivery.private_note`.
        event_name: String,
    },
    /// A collaborative-document item: an op, snapshot or presence update.
    Document {
        /// Document id.
        doc_id: String,
        /// What the item is, e.g. `op`, `snapshot`, `cursor`.
        kind: String,
        /// Sequence number the item belongs to.
        sequence: u64,
    },
}

impl Scope {
    /// A chat scope.
    pub fn chat(room_id: impl Into<String>, message_id: impl Into<String>) -> Result<Scope, CryptoError> {
        Scope::Chat { room_id: room_id.into(), message_id: message_id.into() }.validated()
    }

    /// A call-signaling scope.
    pub fn call(call_id: impl Into<String>, event_name: impl Into<String>) -> Result<Scope, CryptoError> {
        Scope::Call { call_id: call_id.into(), event_name: event_name.into() }.validated()
    }

    /// A custom scope.
    pub fn custom(
        scope: impl Into<String>,
        scope_id: impl Into<String>,
        event_name: impl Into<String>,
    ) -> Result<Scope, CryptoError> {
        Scope::Custom { scope: scope.into(), scope_id: scope_id.into(), event_name: event_name.into() }
            .validated()
    }

    /// A document scope.
    pub fn document(
        doc_id: impl Into<String>,
        kind: impl Into<String>,
        sequence: u64,
    ) -> Result<Scope, CryptoError> {
        Scope::Document { doc_id: doc_id.into(), kind: kind.into(), sequence }.validated()
    }

    /// The kind label bound into the AAD: `chat`, `call`, `custom` or `doc`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Chat { .. } => "chat",
            Scope::Call { .. } => "call",
            Scope::Custom { .. } => "custom",
            Scope::Document { .. } => "doc",
        }
    }

    /// The scope's fields in AAD order, as UTF-8 strings (a document's
    /// sequence in decimal without leading zeros).
    pub fn fields(&self) -> Vec<String> {
        match self {
            Scope::Chat { room_id, message_id } => vec![room_id.clone(), message_id.clone()],
            Scope::Call { call_id, event_name } => vec![call_id.clone(), event_name.clone()],
            Scope::Custom { scope, scope_id, event_name } => {
                vec![scope.clone(), scope_id.clone(), event_name.clone()]
            }
            Scope::Document { doc_id, kind, sequence } => {
                vec![doc_id.clone(), kind.clone(), sequence.to_string()]
            }
        }
    }

    /// Calls `f` with the fields in AAD order without cloning them (the
    /// per-envelope path; [`Scope::fields`] is the convenient one).
    pub(crate) fn with_fields<R>(&self, f: impl FnOnce(&[&str]) -> R) -> R {
        match self {
            Scope::Chat { room_id, message_id } => f(&[room_id, message_id]),
            Scope::Call { call_id, event_name } => f(&[call_id, event_name]),
            Scope::Custom { scope, scope_id, event_name } => f(&[scope, scope_id, event_name]),
            Scope::Document { doc_id, kind, sequence } => f(&[doc_id, kind, &sequence.to_string()]),
        }
    }

    /// The stream a replay window tracks for this scope: the conversation
    /// the scope lives in (chat room, call, custom scope + id, document),
    /// without the per-message part.
    pub(crate) fn replay_stream(&self) -> Vec<u8> {
        let parts: [&str; 3] = match self {
            Scope::Chat { room_id, .. } => ["chat", room_id, ""],
            Scope::Call { call_id, .. } => ["call", call_id, ""],
            Scope::Custom { scope, scope_id, .. } => ["custom", scope, scope_id],
            Scope::Document { doc_id, .. } => ["doc", doc_id, ""],
        };
        let mut out = Vec::new();
        for part in parts {
            super::aad::push_prefixed(&mut out, part.as_bytes());
        }
        out
    }

    fn validated(self) -> Result<Scope, CryptoError> {
        for field in self.fields() {
            if field.is_empty() {
                return Err(CryptoError::InvalidScope {
                    reason: format!("{} scope has an empty field", self.kind()),
                });
            }
            if field.len() > MAX_SCOPE_FIELD {
                return Err(CryptoError::InvalidScope {
                    reason: format!(
                        "{} scope field is {} bytes, over {MAX_SCOPE_FIELD}",
                        self.kind(),
                        field.len()
                    ),
                });
            }
        }
        Ok(self)
    }
}

/// `chat:ROOM:MESSAGE`, `call:CALL:EVENT`, `custom:SCOPE:SCOPE_ID:EVENT`,
/// `doc:DOC:KIND:SEQ`. Every field but the last must not contain `:`; the
/// last may.
impl FromStr for Scope {
    type Err = CryptoError;

    fn from_str(text: &str) -> Result<Scope, CryptoError> {
        let (kind, rest) = text.split_once(':').ok_or_else(|| invalid(text, "expected KIND:FIELD:…"))?;
        let arity = match kind {
            "chat" | "call" => 2,
            "custom" | "doc" => 3,
            _ => return Err(invalid(text, "kind must be chat, call, custom or doc")),
        };
        let parts: Vec<&str> = rest.splitn(arity, ':').collect();
        if parts.len() != arity {
            return Err(invalid(text, "wrong number of fields for this kind"));
        }
        match (kind, parts.as_slice()) {
            ("chat", [room, message]) => Scope::chat(*room, *message),
            ("call", [call, event]) => Scope::call(*call, *event),
            ("custom", [scope, id, event]) => Scope::custom(*scope, *id, *event),
            ("doc", [doc, item, seq]) => {
                let sequence =
                    parse_sequence(seq).ok_or_else(|| invalid(text, "SEQ must be a decimal u64"))?;
                Scope::document(*doc, *item, sequence)
            }
            _ => Err(invalid(text, "wrong number of fields for this kind")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.fields().join(":"))
    }
}

fn parse_sequence(text: &str) -> Option<u64> {
    // Only the canonical decimal form, so the AAD field equals the input.
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn invalid(text: &str, reason: &str) -> CryptoError {
    let shown: String = text.chars().take(64).collect();
    CryptoError::InvalidScope { reason: format!("{reason} (got {shown:?})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!("chat:room-42:msg-1".parse::<Scope>().unwrap(), Scope::chat("room-42", "msg-1").unwrap());
        assert_eq!("call:c9:call.offer".parse::<Scope>().unwrap(), Scope::call("c9", "call.offer").unwrap());
        assert_eq!(
            "custom:delivery:order-1:delivery.note".parse::<Scope>().unwrap(),
            Scope::custom("delivery", "order-1", "delivery.note").unwrap()
        );
        assert_eq!("doc:d1:op:17".parse::<Scope>().unwrap(), Scope::document("d1", "op", 17).unwrap());
        // The last field may hold colons.
        assert_eq!("chat:r:a:b".parse::<Scope>().unwrap(), Scope::chat("r", "a:b").unwrap());
    }

    #[test]
    fn rejects_bad_scopes() {
        for bad in [
            "",
            "chat",
            "chat:room",
            "chat::m",
            "chat:r:",
            "email:a:b",
            "doc:d:op:x",
            "doc:d:op:01",
            "doc:d:op:-1",
            "custom:a:b",
        ] {
            assert!(
                matches!(bad.parse::<Scope>(), Err(CryptoError::InvalidScope { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(Scope::chat("r", "x".repeat(MAX_SCOPE_FIELD + 1)).is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["chat:r:m", "call:c:e", "custom:s:i:e", "doc:d:snapshot:0"] {
            assert_eq!(text.parse::<Scope>().unwrap().to_string(), text);
        }
    }
}
