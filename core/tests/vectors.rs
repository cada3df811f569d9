//! Known-answer vectors: `docs/envelope-vectors.json`.
//!
//! Every positive vector is re-sealed with its fixed nonce and must give the
//! published envelope byte for byte; its AAD is rebuilt here from the spec
//! (independently of the library) and checked against AES-GCM directly;
//! every derivation is recomputed; every negative vector must fail with its
//! published error code.
//!
//! Regenerate (only when the format deliberately changes):
//! `SEALCAST_REGEN_VECTORS=1 cargo test -p sealcast-core --test vectors -- --test-threads=1`.

use std::convert::Infallible;
use std::path::PathBuf;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand_core::{TryCryptoRng, TryRng};
use sealcast_core::crypto::{Envelope, JsonPointer, Key, KeyRing, Scope, derive_key, open_value, seal_value};
use serde_json::{Value, json};

/// An RNG that hands out exactly the given nonce: vectors need fixed nonces.
struct FixedRng(Vec<u8>);

impl TryRng for FixedRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("envelopes only fill bytes")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("envelopes only fill bytes")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let taken: Vec<u8> = self.0.drain(..dst.len()).collect();
        dst.copy_from_slice(&taken);
        Ok(())
    }
}

impl TryCryptoRng for FixedRng {}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/envelope-vectors.json")
}

fn lp(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The AAD exactly as docs/envelope.md writes it, built without the library.
fn spec_aad(kid: &str, kv: u32, kind: &str, fields: &[String], path: &str) -> Vec<u8> {
    let mut aad = Vec::new();
    lp(&mut aad, b"sealcast/envelope");
    aad.push(1);
    lp(&mut aad, b"A256GCM");
    lp(&mut aad, kid.as_bytes());
    aad.extend_from_slice(&kv.to_be_bytes());
    lp(&mut aad, kind.as_bytes());
    aad.push(fields.len() as u8);
    for field in fields {
        lp(&mut aad, field.as_bytes());
    }
    lp(&mut aad, path.as_bytes());
    aad
}

fn scope_of(json: &Value) -> Scope {
    json["scope"].as_str().unwrap().parse().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_of(text: &str) -> Key {
    Key::from_base64url(text).unwrap()
}

/// Deterministic, obviously-synthetic test keys.
fn test_key(n: u8) -> Key {
    Key::from_bytes(&core::array::from_fn(|i| n.wrapping_mul(31).wrapping_add(i as u8)))
}

fn test_iv(n: u8) -> Vec<u8> {
    (0..12).map(|i| n.wrapping_mul(17).wrapping_add(i)).collect()
}

struct Case {
    name: &'static str,
    key: Key,
    kid: &'static str,
    kv: u32,
    scope: &'static str,
    path: &'static str,
    plaintext: Value,
    derived_from: Option<Value>,
}

fn positive_cases() -> Vec<Case> {
    let master = test_key(200);
    let derived = derive_key(&master, "document", "doc-7", b"session-salt-1");
    let case = |name, n, kid, kv, scope, path, plaintext| Case {
        name,
        key: test_key(n),
        kid,
        kv,
        scope,
        path,
        plaintext,
        derived_from: None,
    };
    vec![
        case("chat body", 1, "room-42", 1, "chat:room-42:msg-1", "/body", json!("Private message")),
        case(
            "chat whole event",
            1,
            "room-42",
            1,
            "chat:room-42:msg-2",
            "",
            json!({"body": "hi", "sender_id": "user-1"}),
        ),
        case("chat after rotation (kv 2)", 2, "room-42", 2, "chat:room-42:msg-3", "/body", json!("rotated")),
        case(
            "call offer sdp",
            3,
            "call-9001-key",
            1,
            "call:call-9001:call.offer",
            "/sdp",
            json!("v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\n"),
        ),
        case(
            "call ICE candidate",
            3,
            "call-9001-key",
            1,
            "call:call-9001:call.ice",
            "",
            json!({"candidate": "candidate:1 1 UDP 2122 192.0.2.1 54400 typ host", "sdpMid": "0"}),
        ),
        case(
            "custom delivery note",
            4,
            "delivery",
            7,
            "custom:delivery:order-1001:delivery.private_note",
            "/note",
            json!("Sensitive delivery instruction"),
        ),
        case(
            "custom unicode scope",
            4,
            "ключ",
            1,
            "custom:位置:ø-1:loc.update",
            "/where",
            json!({"lat": 52.52, "lng": 13.405}),
        ),
        case(
            "document op",
            5,
            "doc-1",
            1,
            "doc:doc-1:op:42",
            "/payload",
            json!({"ops": [{"retain": 3}, {"insert": "x", "attributes": {"bold": true}}]}),
        ),
        case(
            "document snapshot",
            5,
            "doc-1",
            1,
            "doc:doc-1:snapshot:0",
            "",
            json!({"ops": [{"insert": "Hello\n"}]}),
        ),
        case("empty string", 6, "k", 0, "chat:r:m", "/body", json!("")),
        case("unicode plaintext", 6, "k", 4294967295, "chat:r:m", "/body", json!("héllo 👋 — ünïcödé \u{0}")),
        case("escaped pointer", 7, "k", 1, "chat:r:m", "/a~1b/c~0d", json!(true)),
        case("array element", 7, "k", 1, "chat:r:m", "/items/0", json!(null)),
        case("number", 7, "k", 1, "chat:r:m", "/n", json!(-12.5e-3)),
        Case {
            name: "derived document key",
            key: derived,
            kid: "doc-7",
            kv: 1,
            scope: "doc:doc-7:op:1",
            path: "/payload",
            plaintext: json!({"ops": [{"insert": "derived"}]}),
            derived_from: Some(json!({
                "master": master.to_base64url(), "purpose": "document", "id": "doc-7", "salt": "session-salt-1"
            })),
        },
    ]
}

fn seal_case(case: &Case, iv: &[u8]) -> Envelope {
    let scope: Scope = case.scope.parse().unwrap();
    let path: JsonPointer = case.path.parse().unwrap();
    seal_value(&case.key, case.kid, case.kv, &scope, &path, &case.plaintext, &mut FixedRng(iv.to_vec()))
        .unwrap()
}

fn generate() -> Value {
    let mut positive = Vec::new();
    for (n, case) in positive_cases().iter().enumerate() {
        let iv = test_iv(n as u8);
        let envelope = seal_case(case, &iv);
        let scope: Scope = case.scope.parse().unwrap();
        let aad = spec_aad(case.kid, case.kv, scope.kind(), &scope.fields(), case.path);
        let mut vector = json!({
            "name": case.name,
            "key": case.key.to_base64url(),
            "kid": case.kid,
            "kv": case.kv,
            "scope": case.scope,
            "scope_kind": scope.kind(),
            "scope_fields": scope.fields(),
            "path": case.path,
            "plaintext": case.plaintext,
            "plaintext_utf8": serde_json::to_string(&case.plaintext).unwrap(),
            "iv": B64.encode(&iv),
            "aad_hex": hex(&aad),
            "envelope": envelope.to_json(),
        });
        if let Some(from) = &case.derived_from {
            vector["derived_from"] = from.clone();
        }
        positive.push(vector);
    }

    let base = &positive[0];
    let envelope = base["envelope"].clone();
    let mutated = |field: &str, value: Value| {
        let mut e = envelope.clone();
        e[field] = value;
        e
    };
    let flip_first = |text: &str| {
        let first = if text.starts_with('A') { 'B' } else { 'A' };
        format!("{first}{}", &text[1..])
    };
    let text = |field: &str| envelope[field].as_str().unwrap().to_owned();
    let mut without_kc = envelope.clone();
    without_kc.as_object_mut().unwrap().remove("kc");
    let short_ct = mutated("ct", json!(B64.encode([0u8; 15])));
    let negative_cases: Vec<(&str, Value, &str, &str, &str, &str)> = vec![
        (
            "ciphertext byte changed",
            mutated("ct", json!(flip_first(&text("ct")))),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "decrypt_failed",
        ),
        (
            "wrong message id in scope",
            envelope.clone(),
            "chat:room-42:msg-2",
            "/body",
            "room-42",
            "decrypt_failed",
        ),
        ("wrong room in scope", envelope.clone(), "chat:room-43:msg-1", "/body", "room-42", "decrypt_failed"),
        (
            "moved to another field",
            envelope.clone(),
            "chat:room-42:msg-1",
            "/subject",
            "room-42",
            "decrypt_failed",
        ),
        (
            "other scope kind",
            envelope.clone(),
            "custom:room-42:msg-1:x",
            "/body",
            "room-42",
            "decrypt_failed",
        ),
        (
            "nonce changed",
            mutated("iv", json!(flip_first(&text("iv")))),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "commitment_mismatch",
        ),
        (
            "commitment changed",
            mutated("kc", json!(flip_first(&text("kc")))),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "commitment_mismatch",
        ),
        (
            "unsupported version",
            mutated("v", json!(2)),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "unsupported_version",
        ),
        (
            "unsupported algorithm",
            mutated("alg", json!("A128GCM")),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "unsupported_algorithm",
        ),
        (
            "padded base64 nonce",
            mutated("iv", json!(format!("{}=", &text("iv")[..15]))),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "invalid_base64",
        ),
        (
            "standard-alphabet base64",
            mutated("ct", json!(text("ct").replace(['-', '_'], "+") + "+/")),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "invalid_base64",
        ),
        ("missing commitment", without_kc, "chat:room-42:msg-1", "/body", "room-42", "malformed_envelope"),
        (
            "extra field",
            mutated("x", json!(1)),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "malformed_envelope",
        ),
        (
            "ciphertext shorter than tag",
            short_ct,
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "malformed_envelope",
        ),
        (
            "kv as string",
            mutated("kv", json!("1")),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "malformed_envelope",
        ),
        (
            "unknown key id",
            mutated("kid", json!("room-99")),
            "chat:room-42:msg-1",
            "/body",
            "room-42",
            "unknown_key",
        ),
    ];
    let mut negative: Vec<Value> = negative_cases
        .into_iter()
        .map(|(name, envelope, scope, path, kid, error)| {
            json!({"name": name, "key": base["key"], "kid": kid, "kv": 1, "scope": scope, "path": path, "envelope": envelope, "error": error})
        })
        .collect();
    // Same kid/kv, different key: the commitment catches it before AES-GCM.
    negative.push(json!({
        "name": "wrong key under the right kid/kv", "key": test_key(99).to_base64url(), "kid": "room-42", "kv": 1,
        "scope": "chat:room-42:msg-1", "path": "/body", "envelope": envelope, "error": "commitment_mismatch"
    }));
    // Authentic envelope whose plaintext is not JSON: built with raw AES-GCM.
    let key = test_key(1);
    let iv = test_iv(250);
    let aad = spec_aad("room-42", 1, "chat", &["room-42".into(), "msg-1".into()], "/body");
    let cipher = Aes256Gcm::new_from_slice(key.expose_secret()).unwrap();
    let nonce = Nonce::try_from(iv.as_slice()).unwrap();
    let ct = cipher.encrypt(&nonce, Payload { msg: b"not json", aad: &aad }).unwrap();
    let kc = commitment(&key, &iv);
    negative.push(json!({
        "name": "plaintext is not JSON", "key": key.to_base64url(), "kid": "room-42", "kv": 1,
        "scope": "chat:room-42:msg-1", "path": "/body",
        "envelope": {"v": 1, "alg": "A256GCM", "kid": "room-42", "kv": 1, "iv": B64.encode(&iv), "ct": B64.encode(ct), "kc": B64.encode(kc)},
        "error": "invalid_plaintext"
    }));

    json!({
        "description": "sealcast envelope v1 test vectors. See docs/envelope.md. Keys and nonces are synthetic; never use them.",
        "positive": positive,
        "derivations": derivations(),
        "negative": negative,
    })
}

fn derivations() -> Vec<Value> {
    let cases = [
        (200u8, "document", "doc-7", "session-salt-1"),
        (200, "document", "doc-7", ""),
        (201, "document", "文档-1", "QmFzZTY0U2FsdA"),
        (202, "room", "room-42", "2026-11"),
    ];
    cases
        .iter()
        .map(|&(n, purpose, id, salt)| {
            let master = test_key(n);
            json!({
                "master": master.to_base64url(), "purpose": purpose, "id": id, "salt": salt,
                "key": derive_key(&master, purpose, id, salt.as_bytes()).to_base64url(),
            })
        })
        .collect()
}

/// The commitment written out from the spec with a plain HMAC.
fn commitment(key: &Key, iv: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.expose_secret()).unwrap();
    mac.update(b"sealcast/v1/commit");
    mac.update(iv);
    mac.finalize().into_bytes().to_vec()
}

fn load() -> Value {
    if std::env::var_os("SEALCAST_REGEN_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
        std::fs::write(vectors_path(), text).unwrap();
    }
    let text = std::fs::read_to_string(vectors_path()).expect("docs/envelope-vectors.json");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn file_matches_generator() {
    // The published file is exactly what the cases above produce.
    assert_eq!(load(), generate());
}

#[test]
fn positive_vectors_seal_and_open_exactly() {
    let vectors = load();
    let positive = vectors["positive"].as_array().unwrap();
    assert!(positive.len() >= 12);
    for v in positive {
        let name = v["name"].as_str().unwrap();
        let key = key_of(v["key"].as_str().unwrap());
        if let Some(from) = v.get("derived_from") {
            let master = key_of(from["master"].as_str().unwrap());
            let derived = derive_key(
                &master,
                from["purpose"].as_str().unwrap(),
                from["id"].as_str().unwrap(),
                from["salt"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(derived, key, "{name}: derivation");
        }
        let kid = v["kid"].as_str().unwrap();
        let kv = u32::try_from(v["kv"].as_u64().unwrap()).unwrap();
        let scope = scope_of(v);
        let path: JsonPointer = v["path"].as_str().unwrap().parse().unwrap();
        let iv = B64.decode(v["iv"].as_str().unwrap()).unwrap();

        // 1. Sealing with the fixed nonce reproduces the envelope exactly.
        let envelope =
            seal_value(&key, kid, kv, &scope, &path, &v["plaintext"], &mut FixedRng(iv.clone())).unwrap();
        assert_eq!(envelope.to_json(), v["envelope"], "{name}: envelope");
        assert_eq!(
            serde_json::to_string(&v["plaintext"]).unwrap(),
            v["plaintext_utf8"].as_str().unwrap(),
            "{name}"
        );

        // 2. The AAD from the spec and raw AES-GCM give the same ciphertext.
        let fields: Vec<String> =
            v["scope_fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect();
        let aad = spec_aad(kid, kv, v["scope_kind"].as_str().unwrap(), &fields, v["path"].as_str().unwrap());
        assert_eq!(hex(&aad), v["aad_hex"].as_str().unwrap(), "{name}: aad");
        let cipher = Aes256Gcm::new_from_slice(key.expose_secret()).unwrap();
        let nonce = Nonce::try_from(iv.as_slice()).unwrap();
        let raw = cipher
            .encrypt(&nonce, Payload { msg: v["plaintext_utf8"].as_str().unwrap().as_bytes(), aad: &aad })
            .unwrap();
        assert_eq!(B64.encode(raw), v["envelope"]["ct"].as_str().unwrap(), "{name}: raw AES-GCM");
        assert_eq!(
            B64.encode(commitment(&key, &iv)),
            v["envelope"]["kc"].as_str().unwrap(),
            "{name}: commitment"
        );

        // 3. The published envelope opens to the plaintext.
        let parsed = Envelope::from_json(&v["envelope"]).unwrap();
        assert_eq!(open_value(&key, &scope, &path, &parsed).unwrap(), v["plaintext"], "{name}: open");
    }
}

#[test]
fn derivation_vectors() {
    let vectors = load();
    for d in vectors["derivations"].as_array().unwrap() {
        let master = key_of(d["master"].as_str().unwrap());
        let key = derive_key(
            &master,
            d["purpose"].as_str().unwrap(),
            d["id"].as_str().unwrap(),
            d["salt"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(key.to_base64url(), d["key"].as_str().unwrap());
    }
}

#[test]
fn negative_vectors_fail_with_their_code() {
    let vectors = load();
    let negative = vectors["negative"].as_array().unwrap();
    assert!(negative.len() >= 12);
    for v in negative {
        let name = v["name"].as_str().unwrap();
        let ring =
            KeyRing::single(v["kid"].as_str().unwrap(), 1, key_of(v["key"].as_str().unwrap())).unwrap();
        let path: JsonPointer = v["path"].as_str().unwrap().parse().unwrap();
        let result = Envelope::from_json(&v["envelope"]).and_then(|e| ring.open(&scope_of(v), &path, &e));
        let err = result.expect_err(name);
        assert_eq!(err.code(), v["error"].as_str().unwrap(), "{name}: {err}");
    }
}
