use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::crypto::KeyRing;

fn key() -> Key {
    Key::from_bytes(&[7; 32])
}

fn scope() -> Scope {
    Scope::chat("room-42", "msg-1").unwrap()
}

fn body() -> JsonPointer {
    "/body".parse().unwrap()
}

fn sealed(value: &Value) -> Envelope {
    seal_value(&key(), "room-42", 1, &scope(), &body(), value, &mut crate::crypto::OsRng).unwrap()
}

fn open(envelope: &Envelope) -> Result<Value, CryptoError> {
    open_value(&key(), &scope(), &body(), envelope)
}

#[test]
fn round_trip_through_json() {
    for value in
        [json!("Private message"), json!(""), json!({"a": [1, 2.5, null, true]}), json!("héllo 👋 \u{0}")]
    {
        let envelope = sealed(&value);
        let parsed = Envelope::from_json(&envelope.to_json()).unwrap();
        assert_eq!(parsed, envelope);
        assert_eq!(open(&parsed).unwrap(), value);
    }
}

#[test]
fn json_form_has_exactly_the_spec_fields() {
    let json = sealed(&json!("x")).to_json();
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["v", "alg", "kid", "kv", "iv", "ct", "kc"]);
    assert_eq!(json["v"], 1);
    assert_eq!(json["alg"], "A256GCM");
    assert_eq!(json["iv"].as_str().unwrap().len(), 16);
    assert_eq!(json["kc"].as_str().unwrap().len(), 43);
}

#[test]
fn nonces_are_fresh() {
    assert_ne!(sealed(&json!("x")).iv, sealed(&json!("x")).iv);
}

#[test]
fn every_byte_of_iv_ct_and_kc_is_authenticated() {
    let envelope = sealed(&json!({"body": "secret"}));
    for i in 0..envelope.iv.len() {
        let mut bad = envelope.clone();
        bad.iv[i] ^= 0x01;
        // The commitment covers the nonce, so it fails first.
        assert_eq!(open(&bad).unwrap_err().code(), "commitment_mismatch", "iv byte {i}");
    }
    for i in 0..envelope.ct.len() {
        let mut bad = envelope.clone();
        bad.ct[i] ^= 0x80;
        assert_eq!(open(&bad).unwrap_err().code(), "decrypt_failed", "ct byte {i}");
    }
    for i in 0..envelope.kc.len() {
        let mut bad = envelope.clone();
        bad.kc[i] ^= 0x01;
        assert_eq!(open(&bad).unwrap_err().code(), "commitment_mismatch", "kc byte {i}");
    }
    let mut truncated = envelope.clone();
    truncated.ct.pop();
    assert_eq!(open(&truncated).unwrap_err().code(), "decrypt_failed");
}

#[test]
fn kid_kv_scope_and_path_are_bound() {
    let envelope = sealed(&json!("secret"));
    let mut other_kid = envelope.clone();
    other_kid.kid = "room-43".into();
    assert_eq!(open(&other_kid).unwrap_err().code(), "decrypt_failed");
    let mut other_kv = envelope.clone();
    other_kv.kv = 2;
    assert_eq!(open(&other_kv).unwrap_err().code(), "decrypt_failed");

    let wrong_scopes = [
        Scope::chat("room-43", "msg-1").unwrap(),
        Scope::chat("room-42", "msg-2").unwrap(),
        Scope::custom("room-42", "msg-1", "x").unwrap(),
        Scope::call("room-42", "msg-1").unwrap(),
    ];
    for scope in wrong_scopes {
        assert_eq!(open_value(&key(), &scope, &body(), &envelope).unwrap_err().code(), "decrypt_failed");
    }
    for path in ["", "/bodx", "/body/0", "/Body"] {
        let path: JsonPointer = path.parse().unwrap();
        assert_eq!(open_value(&key(), &scope(), &path, &envelope).unwrap_err().code(), "decrypt_failed");
    }
}

#[test]
fn wrong_key_fails_the_commitment() {
    let envelope = sealed(&json!("secret"));
    let err = open_value(&Key::from_bytes(&[8; 32]), &scope(), &body(), &envelope).unwrap_err();
    assert_eq!(err.code(), "commitment_mismatch");
}

#[test]
fn an_unsigned_envelope_under_a_device_keys_kid_does_not_open() {
    let envelope =
        seal_value(&key(), "mls.group", 3, &scope(), &body(), &json!(1), &mut crate::crypto::OsRng).unwrap();
    assert_eq!(open(&envelope).unwrap_err().code(), "signature_required");
}

#[test]
fn strict_parsing() {
    let good = sealed(&json!("x")).to_json();
    let with = |field: &str, value: Value| {
        let mut json = good.clone();
        json[field] = value;
        Envelope::from_json(&json).unwrap_err().code()
    };
    assert_eq!(with("v", json!(3)), "unsupported_version");
    assert_eq!(with("v", json!(2)), "malformed_envelope");
    assert_eq!(with("v", json!("1")), "malformed_envelope");
    assert_eq!(with("alg", json!("A128GCM")), "unsupported_algorithm");
    assert_eq!(with("kid", json!("")), "invalid_key_id");
    assert_eq!(with("kid", json!(7)), "malformed_envelope");
    assert_eq!(with("kv", json!(-1)), "malformed_envelope");
    assert_eq!(with("kv", json!(4294967296u64)), "malformed_envelope");
    assert_eq!(with("kv", json!(1.5)), "malformed_envelope");
    assert_eq!(with("iv", json!("AAAAAAAAAAAAAAA=")), "invalid_base64");
    assert_eq!(with("iv", json!("AAAA")), "malformed_envelope");
    assert_eq!(with("ct", json!("")), "malformed_envelope");
    assert_eq!(with("ct", json!("****")), "invalid_base64");
    assert_eq!(with("kc", json!("A")), "malformed_envelope");
    assert_eq!(with("extra", json!(1)), "malformed_envelope");
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("kc");
    assert_eq!(Envelope::from_json(&missing).unwrap_err().code(), "malformed_envelope");
    assert_eq!(Envelope::from_json(&json!([1])).unwrap_err().code(), "malformed_envelope");
}

#[test]
fn oversize_is_rejected_both_ways() {
    let big = Value::String("x".repeat(MAX_SEALED_BYTES));
    let err = seal_value(&key(), "k", 1, &scope(), &body(), &big, &mut crate::crypto::OsRng).unwrap_err();
    assert_eq!(err.code(), "oversize");
    let mut json = sealed(&json!("x")).to_json();
    json["ct"] = Value::String("A".repeat(MAX_SEALED_BYTES * 2));
    assert_eq!(Envelope::from_json(&json).unwrap_err().code(), "oversize");
}

#[test]
fn error_messages_never_contain_plaintext_or_key() {
    let secret = "canary-plaintext-1f9a";
    let envelope = sealed(&json!(secret));
    let mut bad = envelope.clone();
    bad.ct[0] ^= 1;
    let errors = [
        open(&bad).unwrap_err(),
        open_value(&Key::from_bytes(&[8; 32]), &scope(), &body(), &envelope).unwrap_err(),
    ];
    for err in errors {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(secret) && !text.contains(&key().to_base64url()), "{text}");
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_scope() -> impl Strategy<Value = Scope> {
    let field = || ".{1,12}";
    prop_oneof![
        (field(), field()).prop_map(|(a, b)| Scope::chat(a, b).unwrap()),
        (field(), field()).prop_map(|(a, b)| Scope::call(a, b).unwrap()),
        (field(), field(), field()).prop_map(|(a, b, c)| Scope::custom(a, b, c).unwrap()),
        (field(), field(), any::<u64>()).prop_map(|(a, b, n)| Scope::document(a, b, n).unwrap()),
    ]
}

fn arb_pointer() -> impl Strategy<Value = JsonPointer> {
    prop::collection::vec(".{0,5}", 0..4)
        .prop_map(|segments| segments.into_iter().fold(JsonPointer::root(), |p, s| p.child(s)))
}

/// Flips one byte of one of: iv, ct, kc, kid, kv, a scope field, the path.
fn mutate(
    envelope: &Envelope,
    scope: &Scope,
    path: &JsonPointer,
    target: u8,
    index: usize,
) -> (Envelope, Scope, JsonPointer) {
    let (mut envelope, mut scope, mut path) = (envelope.clone(), scope.clone(), path.clone());
    let flip_string = |s: &mut String| {
        let mut bytes = std::mem::take(s).into_bytes();
        if bytes.is_empty() {
            bytes.push(b'x');
        } else {
            let i = index % bytes.len();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        }
        *s = String::from_utf8_lossy(&bytes).into_owned();
    };
    match target % 7 {
        0 => envelope.iv[index % 12] ^= 1,
        1 => {
            let n = envelope.ct.len();
            envelope.ct[index % n] ^= 1;
        }
        2 => envelope.kc[index % 32] ^= 1,
        3 => flip_string(&mut envelope.kid),
        4 => envelope.kv ^= 1,
        5 => match &mut scope {
            Scope::Chat { room_id, .. } => flip_string(room_id),
            Scope::Call { event_name, .. } => flip_string(event_name),
            Scope::Custom { scope_id, .. } => flip_string(scope_id),
            Scope::Document { sequence, .. } => *sequence ^= 1,
        },
        _ => path = path.child(if index.is_multiple_of(2) { "x" } else { "" }),
    }
    (envelope, scope, path)
}

proptest! {
    #[test]
    fn prop_round_trip(value in arb_json(), scope in arb_scope(), path in arb_pointer(), kv in any::<u32>()) {
        let k = key();
        let envelope = seal_value(&k, "kid", kv, &scope, &path, &value, &mut crate::crypto::OsRng).unwrap();
        let reparsed = Envelope::from_json(&envelope.to_json()).unwrap();
        prop_assert_eq!(open_value(&k, &scope, &path, &reparsed).unwrap(), value);
    }

    #[test]
    fn prop_any_single_change_fails(
        value in arb_json(), scope in arb_scope(), path in arb_pointer(), target in any::<u8>(), index in any::<usize>()
    ) {
        let k = key();
        let envelope = seal_value(&k, "kid", 5, &scope, &path, &value, &mut crate::crypto::OsRng).unwrap();
        let (bad, bad_scope, bad_path) = mutate(&envelope, &scope, &path, target, index);
        prop_assume!(bad != envelope || bad_scope != scope || bad_path != path);
        prop_assert!(open_value(&k, &bad_scope, &bad_path, &bad).is_err());
    }

    #[test]
    fn prop_wrong_key_fails(value in arb_json(), other in any::<[u8; 32]>()) {
        prop_assume!(other != [7; 32]);
        let envelope = sealed(&value);
        prop_assert_eq!(
            open_value(&Key::from_bytes(&other), &scope(), &body(), &envelope).unwrap_err().code(),
            "commitment_mismatch"
        );
    }

    #[test]
    fn prop_rotation_keeps_old_envelopes(values in prop::collection::vec(arb_json(), 1..6)) {
        let mut ring = KeyRing::new();
        let mut sealed = Vec::new();
        for value in &values {
            ring.rotate("k", Key::generate().unwrap()).unwrap();
            sealed.push(ring.seal("k", &scope(), &body(), value).unwrap());
        }
        for (value, envelope) in values.iter().zip(&sealed) {
            prop_assert_eq!(&ring.open(&scope(), &body(), envelope).unwrap(), value);
        }
    }

    #[test]
    fn prop_parser_never_panics(text in ".{0,200}") {
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            let _ = Envelope::from_json(&value);
        }
    }
}

/// Sender signatures (format v2).
#[cfg(feature = "signatures")]
mod signed {
    use std::collections::HashMap;

    use super::*;
    use crate::crypto::{EnvelopeSigner, SignerKeys};

    /// Members of `room-42` version 1, and whether `room-42` requires signatures.
    struct Members(HashMap<SignerId, [u8; 32]>, bool);

    impl SignerKeys for Members {
        fn signer_key(&self, kid: &str, kv: u32, signer: &SignerId) -> Option<[u8; 32]> {
            (kid == "room-42" && kv == 1).then(|| self.0.get(signer).copied()).flatten()
        }
        fn requires_signature(&self, _kid: &str) -> bool {
            self.1
        }
    }

    fn alice() -> EnvelopeSigner {
        EnvelopeSigner::from_seed(&[1; 32])
    }

    fn bob() -> EnvelopeSigner {
        EnvelopeSigner::from_seed(&[2; 32])
    }

    fn members(required: bool) -> Members {
        Members([alice(), bob()].iter().map(|s| (s.id(), s.public_key())).collect(), required)
    }

    fn signed(value: &Value, signer: &EnvelopeSigner) -> Envelope {
        seal_signed_value(&key(), "room-42", 1, &scope(), &body(), value, signer, &mut crate::crypto::OsRng)
            .unwrap()
    }

    fn open_signed(envelope: &Envelope, members: &Members) -> Result<(Value, Option<SignerId>), CryptoError> {
        open_signed_value(&key(), &scope(), &body(), envelope, members)
    }

    #[test]
    fn a_signed_envelope_round_trips_and_names_its_signer() {
        let envelope = signed(&json!("hi"), &alice());
        let json = envelope.to_json();
        assert_eq!(json["v"], 2);
        assert_eq!(json.as_object().unwrap().len(), 9);
        let parsed = Envelope::from_json(&json).unwrap();
        assert_eq!(parsed, envelope);
        assert_eq!(open_signed(&parsed, &members(true)).unwrap(), (json!("hi"), Some(alice().id())));
        // Where signers are not known it does not open (fail closed).
        assert_eq!(open(&parsed).unwrap_err().code(), "unknown_signer");
        // An unsigned envelope opens where signatures are optional, not where required.
        let plain = sealed(&json!("x"));
        assert_eq!(open_signed(&plain, &members(false)).unwrap(), (json!("x"), None));
        assert_eq!(open_signed(&plain, &members(true)).unwrap_err().code(), "signature_required");
    }

    #[test]
    fn a_member_cannot_write_as_another() {
        let members = members(true);
        // bob signs, then claims alice sent it: the AAD binds sdr (and the
        // signature is bob's), so it fails.
        let mut forged = signed(&json!("from alice, honest"), &bob());
        forged.signature.as_mut().unwrap().signer = alice().id();
        assert_eq!(open_signed(&forged, &members).unwrap_err().code(), "signature_invalid");
        // A flipped signature bit, a stranger's key, a copied signature.
        let mut flipped = signed(&json!(1), &alice());
        flipped.signature.as_mut().unwrap().sig[0] ^= 1;
        assert_eq!(open_signed(&flipped, &members).unwrap_err().code(), "signature_invalid");
        let stranger = EnvelopeSigner::from_seed(&[3; 32]);
        assert_eq!(
            open_signed(&signed(&json!(1), &stranger), &members).unwrap_err().code(),
            "unknown_signer"
        );
        let mut copied = signed(&json!("a"), &alice());
        copied.signature = signed(&json!("b"), &alice()).signature;
        assert_eq!(open_signed(&copied, &members).unwrap_err().code(), "signature_invalid");
        // Stripping the signature (back to v1) breaks the GCM tag.
        let mut stripped = signed(&json!("a"), &alice());
        stripped.signature = None;
        assert_eq!(open_signed(&stripped, &members).unwrap_err().code(), "signature_required");
        assert_eq!(open(&stripped).unwrap_err().code(), "decrypt_failed");
    }

    #[test]
    fn v2_fields_are_parsed_strictly() {
        let json = signed(&json!(1), &alice()).to_json();
        let mut missing = json.clone();
        missing.as_object_mut().unwrap().remove("sig");
        assert_eq!(Envelope::from_json(&missing).unwrap_err().code(), "malformed_envelope");
        let mut v1_with_signer = json.clone();
        v1_with_signer["v"] = json!(1);
        assert_eq!(Envelope::from_json(&v1_with_signer).unwrap_err().code(), "malformed_envelope");
        let mut short = json.clone();
        short["sdr"] = json!("AAAA");
        assert_eq!(Envelope::from_json(&short).unwrap_err().code(), "malformed_envelope");
        let mut v3 = json;
        v3["v"] = json!(3);
        assert_eq!(Envelope::from_json(&v3).unwrap_err().code(), "unsupported_version");
    }

    proptest! {
        #[test]
        fn prop_any_changed_byte_of_a_signed_envelope_fails(value in arb_json(), at in any::<usize>(), bit in 0u8..8) {
            let members = members(true);
            let envelope = signed(&value, &alice());
            let mut bytes = [envelope.iv.to_vec(), envelope.ct.clone(), envelope.kc.to_vec(), envelope.signature.unwrap().sig.to_vec()];
            let total: usize = bytes.iter().map(Vec::len).sum();
            let (mut at, flip) = (at % total, 1u8 << bit);
            for part in bytes.iter_mut() {
                if at < part.len() { part[at] ^= flip; break; }
                at -= part.len();
            }
            let mut tampered = envelope.clone();
            tampered.iv.copy_from_slice(&bytes[0]);
            tampered.ct = bytes[1].clone();
            tampered.kc.copy_from_slice(&bytes[2]);
            tampered.signature.as_mut().unwrap().sig.copy_from_slice(&bytes[3]);
            prop_assert!(open_signed(&tampered, &members).is_err());
        }
    }
}
