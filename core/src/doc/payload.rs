//! What a document client puts in the server's opaque fields: ops,
//! snapshots and cursors sealed as envelopes with the document scope, and
//! keyed digests of the canonical document.
//!
//! | item | scope `(doc id, kind, sequence)` | plaintext |
//! |---|---|---|
//! | op | `(doc, "op", base)` | `{"op_id", "delta"}` |
//! | snapshot | `(doc, "snapshot", seq)` | `{"delta"}` |
//! | cursor | `(doc, "cursor", seq)` | `{"index", "length"}` |
//!
//! The op id inside the op is compared with the one the server reports, so
//! the server cannot pass one client's op off under another id.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::crypto::rand_core::TryCryptoRng;
use crate::crypto::{CryptoError, Envelope, JsonPointer, Key, KeyRing, OsRng, Scope, b64, derive_key};
use crate::ot::Delta;

/// Bytes of HMAC-SHA256 kept in a digest (128 bits).
const DIGEST_LEN: usize = 16;

/// Why an opaque payload could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The envelope did not open (caused by: wrong or missing key,
    /// tampering, or a payload from another scope).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// It opened but is not the expected shape (caused by: the peer that
    /// sealed it).
    #[error("malformed document payload: {0}")]
    Malformed(&'static str),
}

fn seal<R: TryCryptoRng + ?Sized>(
    ring: &mut KeyRing,
    kid: &str,
    scope: &Scope,
    value: &Value,
    rng: &mut R,
) -> Result<String, CryptoError> {
    Ok(ring.seal_with_rng(kid, scope, &JsonPointer::root(), value, rng)?.to_json().to_string())
}

fn open(ring: &KeyRing, scope: &Scope, payload: &str) -> Result<Value, PayloadError> {
    let value: Value =
        serde_json::from_str(payload).map_err(|_| PayloadError::Malformed("payload is not JSON"))?;
    let envelope = Envelope::from_json(&value)?;
    Ok(ring.open(scope, &JsonPointer::root(), &envelope)?)
}

fn delta_member(mut value: Value) -> Result<Delta, PayloadError> {
    let delta = value.get_mut("delta").map(Value::take).ok_or(PayloadError::Malformed("no delta"))?;
    Delta::from_json_value(delta).map_err(|_| PayloadError::Malformed("invalid delta"))
}

/// Seals an op made against the document at `base`.
pub fn seal_op(
    ring: &mut KeyRing,
    kid: &str,
    doc_id: &str,
    base: u64,
    op_id: &str,
    delta: &Delta,
) -> Result<String, CryptoError> {
    seal_op_with_rng(ring, kid, doc_id, base, op_id, delta, &mut OsRng)
}

/// [`seal_op`] with an explicit RNG.
pub fn seal_op_with_rng<R: TryCryptoRng + ?Sized>(
    ring: &mut KeyRing,
    kid: &str,
    doc_id: &str,
    base: u64,
    op_id: &str,
    delta: &Delta,
    rng: &mut R,
) -> Result<String, CryptoError> {
    let scope = Scope::document(doc_id, "op", base)?;
    seal(ring, kid, &scope, &json!({"op_id": op_id, "delta": delta.to_json()}), rng)
}

/// Opens an op the server sequenced with `base` and `op_id`.
pub fn open_op(
    ring: &KeyRing,
    doc_id: &str,
    base: u64,
    op_id: &str,
    payload: &str,
) -> Result<Delta, PayloadError> {
    let value = open(ring, &Scope::document(doc_id, "op", base)?, payload)?;
    if value.get("op_id").and_then(Value::as_str) != Some(op_id) {
        return Err(PayloadError::Malformed("the op id inside the op differs from the server's"));
    }
    delta_member(value)
}

/// Seals the canonical document at `seq`.
pub fn seal_snapshot(
    ring: &mut KeyRing,
    kid: &str,
    doc_id: &str,
    seq: u64,
    document: &Delta,
) -> Result<String, CryptoError> {
    seal_snapshot_with_rng(ring, kid, doc_id, seq, document, &mut OsRng)
}

/// [`seal_snapshot`] with an explicit RNG.
pub fn seal_snapshot_with_rng<R: TryCryptoRng + ?Sized>(
    ring: &mut KeyRing,
    kid: &str,
    doc_id: &str,
    seq: u64,
    document: &Delta,
    rng: &mut R,
) -> Result<String, CryptoError> {
    let scope = Scope::document(doc_id, "snapshot", seq)?;
    seal(ring, kid, &scope, &json!({"delta": document.to_json()}), rng)
}

/// Opens a snapshot stored at `seq`.
pub fn open_snapshot(ring: &KeyRing, doc_id: &str, seq: u64, payload: &str) -> Result<Delta, PayloadError> {
    let document = delta_member(open(ring, &Scope::document(doc_id, "snapshot", seq)?, payload)?)?;
    if !document.is_document() {
        return Err(PayloadError::Malformed("a snapshot holds inserts only"));
    }
    Ok(document)
}

/// Seals a cursor (selection `index .. index + length`) in the view at `seq`.
pub fn seal_cursor(
    ring: &mut KeyRing,
    kid: &str,
    doc_id: &str,
    seq: u64,
    index: usize,
    length: usize,
) -> Result<Value, CryptoError> {
    seal_cursor_with_rng(ring, kid, doc_id, seq, (index, length), &mut OsRng)
}

/// [`seal_cursor`] with an explicit RNG; `selection` is `(index, length)`.
pub fn seal_cursor_with_rng<R: TryCryptoRng + ?Sized>(
    ring: &mut KeyRing,
    kid: &str,
    doc_id: &str,
    seq: u64,
    (index, length): (usize, usize),
    rng: &mut R,
) -> Result<Value, CryptoError> {
    let scope = Scope::document(doc_id, "cursor", seq)?;
    let value = json!({"index": index, "length": length});
    Ok(ring.seal_with_rng(kid, &scope, &JsonPointer::root(), &value, rng)?.to_json())
}

/// Opens a cursor: `(index, length)`.
pub fn open_cursor(
    ring: &KeyRing,
    doc_id: &str,
    seq: u64,
    envelope: &Value,
) -> Result<(usize, usize), PayloadError> {
    let envelope = Envelope::from_json(envelope)?;
    let value = ring.open(&Scope::document(doc_id, "cursor", seq)?, &JsonPointer::root(), &envelope)?;
    let field = |name| value.get(name).and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok());
    match (field("index"), field("length")) {
        (Some(index), Some(length)) => Ok((index, length)),
        _ => Err(PayloadError::Malformed("a cursor is {index, length}")),
    }
}

/// The keyed digest of the canonical document at `seq`: the first 128 bits
/// of HMAC-SHA256 under a key derived from the document key (purpose
/// `doc-digest`), over `doc id || seq || JSON of the document`, in
/// base64url. Equal documents give equal digests; the server learns
/// nothing from them.
pub fn digest(key: &Key, doc_id: &str, seq: u64, document: &Delta) -> String {
    let digest_key = derive_key(key, "doc-digest", doc_id, b"");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(digest_key.expose_secret())
        .expect("HMAC takes any key length");
    mac.update(&(doc_id.len() as u64).to_be_bytes());
    mac.update(doc_id.as_bytes());
    mac.update(&seq.to_be_bytes());
    mac.update(document.to_json_string().as_bytes());
    let tag = mac.finalize().into_bytes();
    b64::encode(&tag[..DIGEST_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::single("doc-key", 1, Key::from_bytes(&[7; 32])).unwrap()
    }

    fn delta(text: &str) -> Delta {
        let mut d = Delta::new();
        d.insert_text(text, None);
        d
    }

    #[test]
    fn ops_open_only_in_their_scope_and_under_their_id() {
        let mut ring = ring();
        let sealed = seal_op(&mut ring, "doc-key", "d1", 4, "op-1", &delta("hi")).unwrap();
        assert!(!sealed.contains("hi\""), "plaintext must not leak into the payload");
        assert_eq!(open_op(&ring, "d1", 4, "op-1", &sealed).unwrap(), delta("hi"));
        assert!(matches!(open_op(&ring, "d1", 5, "op-1", &sealed), Err(PayloadError::Crypto(_))));
        assert!(matches!(open_op(&ring, "d2", 4, "op-1", &sealed), Err(PayloadError::Crypto(_))));
        assert!(matches!(open_op(&ring, "d1", 4, "op-2", &sealed), Err(PayloadError::Malformed(_))));
        assert!(matches!(open_op(&ring, "d1", 4, "op-1", "{}"), Err(PayloadError::Crypto(_))));
        assert!(matches!(open_op(&ring, "d1", 4, "op-1", "nope"), Err(PayloadError::Malformed(_))));
    }

    #[test]
    fn snapshots_and_cursors_round_trip() {
        let mut ring = ring();
        let snap = seal_snapshot(&mut ring, "doc-key", "d1", 9, &delta("abc")).unwrap();
        assert_eq!(open_snapshot(&ring, "d1", 9, &snap).unwrap(), delta("abc"));
        assert!(open_snapshot(&ring, "d1", 8, &snap).is_err());
        let cursor = seal_cursor(&mut ring, "doc-key", "d1", 9, 2, 1).unwrap();
        assert_eq!(open_cursor(&ring, "d1", 9, &cursor).unwrap(), (2, 1));
        assert!(open_cursor(&ring, "d1", 10, &cursor).is_err());
    }

    #[test]
    fn digests_depend_on_key_document_and_sequence() {
        let key = Key::from_bytes(&[1; 32]);
        let a = digest(&key, "d1", 5, &delta("abc"));
        assert_eq!(a, digest(&key, "d1", 5, &delta("abc")));
        assert_eq!(a.len(), 22);
        assert_ne!(a, digest(&key, "d1", 5, &delta("abd")));
        assert_ne!(a, digest(&key, "d1", 6, &delta("abc")));
        assert_ne!(a, digest(&key, "d2", 5, &delta("abc")));
        assert_ne!(a, digest(&Key::from_bytes(&[2; 32]), "d1", 5, &delta("abc")));
    }
}
