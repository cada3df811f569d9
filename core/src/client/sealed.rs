//! Sealed client events: the sender seals chosen fields of an event's JSON
//! data and records the scope in plaintext under [`SCOPE_FIELD`]
//! (`"chat:ROOM:MSG"`, `"call:CALL:EVENT"`, …), so any receiver holding
//! the key can open it without knowing the scope in advance. The scope is
//! bound into every envelope's AAD: changing the recorded scope makes the
//! envelopes fail to open.

use serde_json::Value;

use crate::crypto::rand_core::TryCryptoRng;
use crate::crypto::{CryptoError, KeyRing, OsRng, Scope, find_envelopes, open_fields, seal_fields_with_rng};

/// The plaintext member naming a sealed event's scope.
pub const SCOPE_FIELD: &str = "sealcast_scope";

/// Seals `paths` (RFC 6901 pointers) of `data`, an object, with the current
/// version of `kid`, and records `scope` in it.
pub fn seal_event(
    data: &mut Value,
    paths: &[&str],
    ring: &mut KeyRing,
    kid: &str,
    scope: &Scope,
) -> Result<(), CryptoError> {
    seal_event_with_rng(data, paths, ring, kid, scope, &mut OsRng)
}

/// [`seal_event`] with an explicit RNG.
pub fn seal_event_with_rng<R: TryCryptoRng + ?Sized>(
    data: &mut Value,
    paths: &[&str],
    ring: &mut KeyRing,
    kid: &str,
    scope: &Scope,
    rng: &mut R,
) -> Result<(), CryptoError> {
    check_sealable(data, scope)?;
    seal_fields_with_rng(data, paths, ring, kid, scope, rng)?;
    data[SCOPE_FIELD] = Value::String(scope.to_string());
    Ok(())
}

/// What [`seal_event`] checks before sealing, without a key: the scope
/// survives its text form (receivers parse it back) and `data` is an
/// object.
pub fn check_sealable(data: &Value, scope: &Scope) -> Result<(), CryptoError> {
    if scope.to_string().parse::<Scope>().ok().as_ref() != Some(scope) {
        return Err(CryptoError::InvalidScope { reason: "scope fields must not contain ':'".into() });
    }
    if !data.is_object() {
        return Err(CryptoError::InvalidScope {
            reason: "a sealed event's data must be a JSON object".into(),
        });
    }
    Ok(())
}

/// Opens every envelope in an incoming event's `data`, in place, with the
/// scope it records. `Ok(None)`: a plain event (no envelope, no scope).
/// On error `data` is unchanged (fail closed: no field is half opened).
pub fn open_event(data: &mut Value, ring: &KeyRing) -> Result<Option<Scope>, CryptoError> {
    let scope = match data.get(SCOPE_FIELD) {
        None => {
            if find_envelopes(data).is_empty() {
                return Ok(None);
            }
            return Err(CryptoError::InvalidScope {
                reason: "sealed fields without a sealcast_scope".into(),
            });
        }
        Some(Value::String(text)) => text.parse::<Scope>()?,
        Some(_) => {
            return Err(CryptoError::InvalidScope { reason: "sealcast_scope must be a string".into() });
        }
    };
    open_fields(data, ring, &scope, &[])?;
    Ok(Some(scope))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crypto::Key;

    fn ring() -> KeyRing {
        KeyRing::single("room-1", 1, Key::from_bytes(&[5; 32])).unwrap()
    }

    #[test]
    fn sealed_events_open_with_their_recorded_scope() {
        let mut ring = ring();
        let scope = Scope::chat("room-1", "m-7").unwrap();
        let mut data = json!({"body": "hi there", "from": "ann"});
        seal_event(&mut data, &["/body"], &mut ring, "room-1", &scope).unwrap();
        assert_eq!(data[SCOPE_FIELD], "chat:room-1:m-7");
        assert!(!data.to_string().contains("hi there"));
        let mut received = data.clone();
        assert_eq!(open_event(&mut received, &ring).unwrap(), Some(scope));
        assert_eq!(received["body"], "hi there");

        // Relabelling the scope breaks the envelope, and nothing is opened.
        let mut moved = data.clone();
        moved[SCOPE_FIELD] = json!("chat:room-1:m-8");
        assert!(open_event(&mut moved, &ring).is_err());
        assert!(moved["body"].is_object());
    }

    #[test]
    fn plain_and_malformed_events() {
        let ring = ring();
        assert_eq!(open_event(&mut json!({"a": 1}), &ring).unwrap(), None);
        assert_eq!(open_event(&mut json!("text"), &ring).unwrap(), None);
        let mut bad = json!({SCOPE_FIELD: 5});
        assert!(matches!(open_event(&mut bad, &ring), Err(CryptoError::InvalidScope { .. })));
        let mut ring2 = super::tests::ring();
        let scope = Scope::chat("r", "m").unwrap();
        let mut sealed = json!({"x": "y"});
        seal_event(&mut sealed, &["/x"], &mut ring2, "room-1", &scope).unwrap();
        sealed.as_object_mut().unwrap().remove(SCOPE_FIELD);
        assert!(matches!(open_event(&mut sealed, &ring), Err(CryptoError::InvalidScope { .. })));
        assert!(seal_event(&mut json!([1]), &[], &mut ring2, "room-1", &scope).is_err());
    }
}
