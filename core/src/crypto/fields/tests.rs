use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::crypto::Key;

fn ring() -> KeyRing {
    KeyRing::single("room-42", 1, Key::from_bytes(&[3; 32])).unwrap()
}

fn scope() -> Scope {
    Scope::chat("room-42", "msg-1").unwrap()
}

fn event() -> Value {
    json!({"body": "Private message", "sender_id": "user-1", "meta": {"loc": [1.5, 2.5], "n": 3}})
}

#[test]
fn seals_exactly_the_named_fields() {
    let mut ring = ring();
    let mut sealed = event();
    seal_fields(&mut sealed, &["/body", "/meta/loc"], &mut ring, "room-42", &scope()).unwrap();
    assert_eq!(sealed["sender_id"], "user-1");
    assert_eq!(sealed["meta"]["n"], 3);
    assert!(Envelope::is_envelope(&sealed["body"]));
    assert!(Envelope::is_envelope(&sealed["meta"]["loc"]));
    assert_eq!(find_envelopes(&sealed), vec!["/body", "/meta/loc"]);
    // Key order of the app's JSON is preserved.
    let keys: Vec<_> = sealed.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["body", "sender_id", "meta"]);

    let mut opened = sealed.clone();
    assert_eq!(open_fields(&mut opened, &ring, &scope(), &["/body"]).unwrap(), vec!["/body", "/meta/loc"]);
    assert_eq!(opened, event());
}

#[test]
fn sealing_is_all_or_nothing() {
    let mut ring = ring();
    let mut value = event();
    let err = seal_fields(&mut value, &["/body", "/missing"], &mut ring, "room-42", &scope()).unwrap_err();
    assert_eq!(err.code(), "path_not_found");
    assert_eq!(value, event());
    let err = seal_fields(&mut value, &["/meta", "/meta/n"], &mut ring, "room-42", &scope()).unwrap_err();
    assert!(matches!(err, CryptoError::OverlappingPaths { .. }));
    let err = seal_fields(&mut value, &["/body", "/body"], &mut ring, "room-42", &scope()).unwrap_err();
    assert!(matches!(err, CryptoError::OverlappingPaths { .. }));
    let err = seal_fields(&mut value, &["body"], &mut ring, "room-42", &scope()).unwrap_err();
    assert_eq!(err.code(), "invalid_pointer");
    assert_eq!(value, event());
}

#[test]
fn opening_fails_closed_and_names_the_field() {
    let mut ring = ring();
    let mut sealed = event();
    seal_fields(&mut sealed, &["/body", "/sender_id"], &mut ring, "room-42", &scope()).unwrap();
    sealed["sender_id"]["ct"] = json!("AAAAAAAAAAAAAAAAAAAAAA");
    let before = sealed.clone();
    let err = open_fields(&mut sealed, &ring, &scope(), &[]).unwrap_err();
    assert!(matches!(&err, CryptoError::Field { pointer, .. } if pointer == "/sender_id"), "{err}");
    assert_eq!(err.code(), "decrypt_failed");
    // /body opened fine but nothing was written back.
    assert_eq!(sealed, before);
}

#[test]
fn an_envelope_moved_to_another_field_fails() {
    let mut ring = ring();
    let mut sealed = json!({"a": "secret", "b": "other"});
    seal_fields(&mut sealed, &["/a"], &mut ring, "room-42", &scope()).unwrap();
    let mut moved = json!({"b": sealed["a"].clone()});
    let err = open_fields(&mut moved, &ring, &scope(), &[]).unwrap_err();
    assert_eq!(err.code(), "decrypt_failed");
}

#[test]
fn stripped_encryption_is_detected() {
    let ring = ring();
    let mut plain = event();
    let err = open_fields(&mut plain, &ring, &scope(), &["/body"]).unwrap_err();
    assert!(matches!(err, CryptoError::NotSealed { .. }));
    let err = open_fields(&mut plain, &ring, &scope(), &["/nope"]).unwrap_err();
    assert_eq!(err.code(), "path_not_found");
}

#[test]
fn replays_are_rejected() {
    let mut ring = ring();
    let mut sealed = event();
    seal_fields(&mut sealed, &["/body"], &mut ring, "room-42", &scope()).unwrap();
    let mut window = ReplayWindow::new();
    let mut first = sealed.clone();
    open_fields_with_replay(&mut first, &ring, &scope(), &["/body"], &mut window).unwrap();
    let mut again = sealed.clone();
    let err = open_fields_with_replay(&mut again, &ring, &scope(), &["/body"], &mut window).unwrap_err();
    assert_eq!(err.code(), "replayed");
    assert_eq!(again, sealed);
}

#[test]
fn whole_value_helpers_mirror_the_guide() {
    let mut ring = ring();
    let message = json!({"body": "Private message", "sender_id": "user-1"});
    let sealed = seal_chat_json(&message, &mut ring, "room-42", "room-42", "msg-1").unwrap();
    assert!(Envelope::is_envelope(&sealed));
    assert_eq!(open_chat_json(&sealed, &ring, "room-42", "msg-1").unwrap(), message);
    assert_eq!(open_chat_json(&sealed, &ring, "room-42", "msg-2").unwrap_err().code(), "decrypt_failed");

    let offer = json!({"sdp_type": "offer", "sdp": "v=0..."});
    let sealed = seal_call_json(&offer, &mut ring, "room-42", "call-9001", "call.offer").unwrap();
    assert_eq!(open_call_json(&sealed, &ring, "call-9001", "call.offer").unwrap(), offer);
    assert!(open_call_json(&sealed, &ring, "call-9001", "call.answer").is_err());

    let note = json!({"note": "Sensitive delivery instruction"});
    let sealed =
        seal_custom_json(&note, &mut ring, "room-42", "delivery", "order-1001", "delivery.private_note")
            .unwrap();
    assert_eq!(
        open_custom_json(&sealed, &ring, "delivery", "order-1001", "delivery.private_note").unwrap(),
        note
    );
    assert_eq!(
        open_custom_json(&note, &ring, "delivery", "order-1001", "x").unwrap_err().code(),
        "not_sealed"
    );
}

#[test]
fn envelopes_inside_arrays_and_escaped_keys() {
    let mut ring = ring();
    let original = json!({"list": ["a", {"x/y": "b", "t~": "c"}]});
    let mut sealed = original.clone();
    seal_fields(&mut sealed, &["/list/0", "/list/1/x~1y", "/list/1/t~0"], &mut ring, "room-42", &scope())
        .unwrap();
    assert_eq!(find_envelopes(&sealed), vec!["/list/0", "/list/1/x~1y", "/list/1/t~0"]);
    open_fields(&mut sealed, &ring, &scope(), &[]).unwrap();
    assert_eq!(sealed, original);
}

/// All pointers to leaves and inner nodes of a value.
fn pointers(value: &Value, at: JsonPointer, out: &mut Vec<JsonPointer>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| pointers(v, at.child(k.as_str()), out)),
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| pointers(v, at.child(i.to_string()), out))
        }
        _ => {}
    }
}

proptest! {
    #[test]
    fn prop_seal_open_arbitrary_paths(
        value in prop::collection::btree_map("[a-z~/]{1,4}", prop_oneof![Just(json!(1)), ".*".prop_map(Value::from), Just(json!({"k": [1, "two"]}))], 1..6),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let original = Value::Object(value.into_iter().collect());
        let mut all = Vec::new();
        pointers(&original, JsonPointer::root(), &mut all);
        // Pick non-overlapping pointers.
        let mut chosen: Vec<JsonPointer> = Vec::new();
        for pick in picks {
            let candidate = pick.get(&all).clone();
            if chosen.iter().all(|c| !c.contains(&candidate) && !candidate.contains(c)) {
                chosen.push(candidate);
            }
        }
        let texts: Vec<String> = chosen.iter().map(ToString::to_string).collect();
        let paths: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut ring = ring();
        let mut sealed = original.clone();
        seal_fields(&mut sealed, &paths, &mut ring, "room-42", &scope()).unwrap();
        let mut found = find_envelopes(&sealed);
        found.sort();
        let mut expected = texts.clone();
        expected.sort();
        prop_assert_eq!(found, expected);
        open_fields(&mut sealed, &ring, &scope(), &paths).unwrap();
        prop_assert_eq!(sealed, original);
    }
}

/// Signed fields (format v2).
#[cfg(feature = "signatures")]
mod signed {
    use serde_json::json;

    use crate::crypto::{
        EnvelopeSigner, Key, KeyRing, OsRng, Scope, SignerId, SignerKeys, open_fields_signed,
        seal_fields_signed_with_rng,
    };

    struct Members(Vec<[u8; 32]>);

    impl SignerKeys for Members {
        fn signer_key(&self, _kid: &str, _kv: u32, signer: &SignerId) -> Option<[u8; 32]> {
            self.0.iter().find(|k| SignerId::of(k) == *signer).copied()
        }
        fn requires_signature(&self, _kid: &str) -> bool {
            true
        }
    }

    #[test]
    fn an_event_opens_naming_its_one_signer_and_spliced_fields_fail() {
        let (alice, bob) = (EnvelopeSigner::from_seed(&[1; 32]), EnvelopeSigner::from_seed(&[2; 32]));
        let members = Members(vec![alice.public_key(), bob.public_key()]);
        let mut ring = KeyRing::single("mls.g", 1, Key::from_bytes(&[3; 32])).unwrap();
        let scope = Scope::chat("room", "m1").unwrap();
        let seal = |ring: &mut KeyRing, signer: &EnvelopeSigner| {
            let mut event = json!({"a": "secret a", "b": {"c": 2}, "to": "route"});
            seal_fields_signed_with_rng(&mut event, &["/a", "/b"], ring, "mls.g", &scope, signer, &mut OsRng)
                .unwrap();
            event
        };
        let from_alice = seal(&mut ring, &alice);
        assert_eq!(from_alice["a"]["v"], 2);
        let mut opened = from_alice.clone();
        let (paths, by) = open_fields_signed(&mut opened, &ring, &scope, &["/a"], &members).unwrap();
        assert_eq!((paths.len(), by), (2, Some(alice.id())));
        assert_eq!(opened, json!({"a": "secret a", "b": {"c": 2}, "to": "route"}));
        // alice's first field with bob's second: refused, event unchanged.
        let from_bob = seal(&mut ring, &bob);
        let mut spliced = from_alice.clone();
        spliced["b"] = from_bob["b"].clone();
        let before = spliced.clone();
        let err = open_fields_signed(&mut spliced, &ring, &scope, &[], &members).unwrap_err();
        assert_eq!(err.code(), "signature_invalid");
        assert_eq!(spliced, before);
        // The v1 opener refuses the signed event.
        let mut plain = from_alice;
        assert_eq!(
            crate::crypto::open_fields(&mut plain, &ring, &scope, &[]).unwrap_err().code(),
            "unknown_signer"
        );
    }
}
