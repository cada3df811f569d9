//! Sealing and opening fields of a JSON event in place.
//!
//! [`seal_fields`] replaces exactly the values at the given RFC 6901 pointers
//! with envelopes, leaving the rest of the event as plain JSON for routing.
//! [`open_fields`] finds every envelope in an event, opens all of them, and
//! only then writes the plaintexts back: if any one fails, the event is left
//! untouched and the error names the failing field (fail closed). The
//! `*_chat_json` / `*_call_json` / `*_custom_json` helpers seal a whole value,
//! like the strong-privacy guide's `encryptChatJson` family.

use rand_core::TryCryptoRng;
use serde_json::Value;

use super::{CryptoError, Envelope, JsonPointer, KeyRing, OsRng, ReplayWindow, Scope};

/// Seals the values at `paths` in `event` with the current version of `kid`,
/// bound to `scope`. Either every path is sealed or (on error) none is.
pub fn seal_fields(
    event: &mut Value,
    paths: &[&str],
    ring: &mut KeyRing,
    kid: &str,
    scope: &Scope,
) -> Result<(), CryptoError> {
    seal_fields_with_rng(event, paths, ring, kid, scope, &mut OsRng)
}

/// [`seal_fields`] with an explicit RNG for the nonces.
pub fn seal_fields_with_rng<R: TryCryptoRng + ?Sized>(
    event: &mut Value,
    paths: &[&str],
    ring: &mut KeyRing,
    kid: &str,
    scope: &Scope,
    rng: &mut R,
) -> Result<(), CryptoError> {
    seal_each(event, paths, |pointer, value| ring.seal_with_rng(kid, scope, pointer, value, rng))
}

/// Seals like [`seal_fields_with_rng`], every envelope signed by `signer`
/// (format v2, docs/envelope.md §11).
#[cfg(feature = "signatures")]
pub fn seal_fields_signed_with_rng<R: TryCryptoRng + ?Sized>(
    event: &mut Value,
    paths: &[&str],
    ring: &mut KeyRing,
    kid: &str,
    scope: &Scope,
    signer: &super::EnvelopeSigner,
    rng: &mut R,
) -> Result<(), CryptoError> {
    seal_each(event, paths, |pointer, value| {
        ring.seal_signed_with_rng(kid, scope, pointer, value, signer, rng)
    })
}

/// Seals the value at each of `paths` with `seal`; all or nothing.
fn seal_each(
    event: &mut Value,
    paths: &[&str],
    mut seal: impl FnMut(&JsonPointer, &Value) -> Result<Envelope, CryptoError>,
) -> Result<(), CryptoError> {
    let pointers = parse_pointers(paths)?;
    for (i, outer) in pointers.iter().enumerate() {
        for inner in &pointers[i + 1..] {
            if outer.contains(inner) || inner.contains(outer) {
                let (outer, inner) = if outer.contains(inner) { (outer, inner) } else { (inner, outer) };
                return Err(CryptoError::OverlappingPaths {
                    outer: outer.to_string(),
                    inner: inner.to_string(),
                });
            }
        }
    }
    // Seal everything before changing anything, so an error leaves the
    // event exactly as it was.
    let mut sealed = Vec::with_capacity(pointers.len());
    for pointer in &pointers {
        let value = pointer
            .resolve(event)
            .ok_or_else(|| CryptoError::PathNotFound { pointer: pointer.to_string() })?;
        sealed.push(seal(pointer, value)?.to_json());
    }
    for (pointer, envelope) in pointers.iter().zip(sealed) {
        // Paths do not overlap, so replacing one value never moves another.
        *pointer.resolve_mut(event).expect("path resolved above and paths do not overlap") = envelope;
    }
    Ok(())
}

/// Opens every envelope in `event` for `scope`, in place. Every pointer in
/// `required` must hold an envelope (a plaintext there is
/// [`CryptoError::NotSealed`], so a sender cannot strip encryption
/// unnoticed). Returns the pointers opened. On any error, `event` is unchanged.
pub fn open_fields(
    event: &mut Value,
    ring: &KeyRing,
    scope: &Scope,
    required: &[&str],
) -> Result<Vec<String>, CryptoError> {
    let opened = open_all(event, required, |pointer, envelope| ring.open(scope, pointer, envelope))?;
    Ok(write_back(event, opened))
}

/// Opens like [`open_fields`], checking every envelope's sender against
/// `signers` (docs/envelope.md §11). All the envelopes of one event must
/// name one signer (fields of two members' events spliced together fail
/// with `SignatureInvalid`); returns the pointers opened and the signer.
#[cfg(feature = "signatures")]
pub fn open_fields_signed(
    event: &mut Value,
    ring: &KeyRing,
    scope: &Scope,
    required: &[&str],
    signers: &dyn super::SignerKeys,
) -> Result<(Vec<String>, Option<super::SignerId>), CryptoError> {
    let mut signer: Option<Option<super::SignerId>> = None;
    let opened = open_all(event, required, |pointer, envelope| {
        let (value, by) = ring.open_signed(scope, pointer, envelope, signers)?;
        match signer {
            Some(first) if first != by => {
                return Err(CryptoError::SignatureInvalid { kid: envelope.kid.clone(), kv: envelope.kv });
            }
            _ => signer = Some(by),
        }
        Ok(value)
    })?;
    Ok((write_back(event, opened), signer.flatten()))
}

/// [`open_fields`], also rejecting any envelope already opened in this
/// scope's stream ([`CryptoError::Replayed`]); the envelopes are recorded in
/// `window` only when the whole event opens.
pub fn open_fields_with_replay(
    event: &mut Value,
    ring: &KeyRing,
    scope: &Scope,
    required: &[&str],
    window: &mut ReplayWindow,
) -> Result<Vec<String>, CryptoError> {
    let opened = open_all(event, required, |pointer, envelope| ring.open(scope, pointer, envelope))?;
    let ivs: Vec<_> = opened.iter().map(|field| field.iv).collect();
    window.check_and_record(scope, &ivs)?;
    Ok(write_back(event, opened))
}

/// The RFC 6901 pointers of every envelope in `event`, in document order.
/// Envelopes are not searched for nested envelopes.
pub fn find_envelopes(event: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(event, JsonPointer::root(), &mut found);
    found.iter().map(ToString::to_string).collect()
}

/// Seals a whole chat value for `room_id`/`message_id`; returns the envelope.
pub fn seal_chat_json(
    value: &Value,
    ring: &mut KeyRing,
    kid: &str,
    room_id: &str,
    message_id: &str,
) -> Result<Value, CryptoError> {
    seal_whole(value, ring, kid, &Scope::chat(room_id, message_id)?)
}

/// Opens a value sealed by [`seal_chat_json`].
pub fn open_chat_json(
    sealed: &Value,
    ring: &KeyRing,
    room_id: &str,
    message_id: &str,
) -> Result<Value, CryptoError> {
    open_whole(sealed, ring, &Scope::chat(room_id, message_id)?)
}

/// Seals a whole call-signaling value (offer, answer, ICE) for `call_id`/`event_name`.
pub fn seal_call_json(
    value: &Value,
    ring: &mut KeyRing,
    kid: &str,
    call_id: &str,
    event_name: &str,
) -> Result<Value, CryptoError> {
    seal_whole(value, ring, kid, &Scope::call(call_id, event_name)?)
}

/// Opens a value sealed by [`seal_call_json`].
pub fn open_call_json(
    sealed: &Value,
    ring: &KeyRing,
    call_id: &str,
    event_name: &str,
) -> Result<Value, CryptoError> {
    open_whole(sealed, ring, &Scope::call(call_id, event_name)?)
}

/// Seals a whole custom event value for `scope`/`scope_id`/`event_name`.
pub fn seal_custom_json(
    value: &Value,
    ring: &mut KeyRing,
    kid: &str,
    scope: &str,
    scope_id: &str,
    event_name: &str,
) -> Result<Value, CryptoError> {
    seal_whole(value, ring, kid, &Scope::custom(scope, scope_id, event_name)?)
}

/// Opens a value sealed by [`seal_custom_json`].
pub fn open_custom_json(
    sealed: &Value,
    ring: &KeyRing,
    scope: &str,
    scope_id: &str,
    event_name: &str,
) -> Result<Value, CryptoError> {
    open_whole(sealed, ring, &Scope::custom(scope, scope_id, event_name)?)
}

struct Opened {
    pointer: JsonPointer,
    iv: [u8; 12],
    value: Value,
}

/// Finds every envelope in `event` and opens each with `open`, checking
/// that every pointer in `required` holds one; nothing is written back.
fn open_all(
    event: &Value,
    required: &[&str],
    mut open: impl FnMut(&JsonPointer, &Envelope) -> Result<Value, CryptoError>,
) -> Result<Vec<Opened>, CryptoError> {
    let mut found = Vec::new();
    walk(event, JsonPointer::root(), &mut found);
    for pointer in parse_pointers(required)? {
        if !found.contains(&pointer) {
            return Err(match pointer.resolve(event) {
                None => CryptoError::PathNotFound { pointer: pointer.to_string() },
                Some(_) => CryptoError::NotSealed { pointer: pointer.to_string() },
            });
        }
    }
    found
        .into_iter()
        .map(|pointer| {
            let at_field =
                |source| CryptoError::Field { pointer: pointer.to_string(), source: Box::new(source) };
            let node = pointer.resolve(event).expect("pointer was found by walking this event");
            let envelope = Envelope::from_json(node).map_err(at_field)?;
            let value = open(&pointer, &envelope).map_err(at_field)?;
            Ok(Opened { pointer, iv: envelope.iv, value })
        })
        .collect()
}

fn write_back(event: &mut Value, opened: Vec<Opened>) -> Vec<String> {
    opened
        .into_iter()
        .map(|field| {
            // Envelopes are leaves of the walk, so none contains another.
            *field.pointer.resolve_mut(event).expect("pointer was found by walking this event") = field.value;
            field.pointer.to_string()
        })
        .collect()
}

fn walk(node: &Value, at: JsonPointer, found: &mut Vec<JsonPointer>) {
    if Envelope::is_envelope(node) {
        found.push(at);
        return;
    }
    match node {
        Value::Object(map) => map.iter().for_each(|(key, child)| walk(child, at.child(key.as_str()), found)),
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, child)| walk(child, at.child(i.to_string()), found))
        }
        _ => {}
    }
}

fn seal_whole(value: &Value, ring: &mut KeyRing, kid: &str, scope: &Scope) -> Result<Value, CryptoError> {
    Ok(ring.seal(kid, scope, &JsonPointer::root(), value)?.to_json())
}

fn open_whole(sealed: &Value, ring: &KeyRing, scope: &Scope) -> Result<Value, CryptoError> {
    if !Envelope::is_envelope(sealed) {
        return Err(CryptoError::NotSealed { pointer: String::new() });
    }
    ring.open(scope, &JsonPointer::root(), &Envelope::from_json(sealed)?)
}

fn parse_pointers(paths: &[&str]) -> Result<Vec<JsonPointer>, CryptoError> {
    paths.iter().map(|p| p.parse()).collect()
}

#[cfg(test)]
mod tests;
