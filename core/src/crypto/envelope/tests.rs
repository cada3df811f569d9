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
fn strict_parsing() {
    let good = sealed(&json!("x")).to_json();
    let with = |field: &str, value: Value| {
        let mut json = good.clone();
        json[field] = value;
        Envelope::from_json(&json).unwrap_err().code()
    };
    assert_eq!(with("v", json!(2)), "unsupported_version");
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
