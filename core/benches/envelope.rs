//! Envelope cost against raw AES-256-GCM, for docs/benchmarks.md.
//!
//! `envelope/{64,1024,16384}`: seal one field of an event (a JSON string of
//! that many bytes) with `seal_fields`, then open it with `open_fields` —
//! JSON encoding of the value, AAD, key commitment, nonce generation,
//! base64url both ways, JSON decoding of the plaintext.
//! `raw_aes_gcm/{..}`: `aes-gcm` encrypt + decrypt of the same number of
//! bytes with the same prepared key, nothing else. Same run, interleaved by
//! criterion's group; compare the two as a ratio.
//!
//! `signed/{..}` (with the `signatures` feature): `seal_signed_value` then
//! `open_signed_value` of the same value (format v2: plus one Ed25519
//! signature and one verification), beside `unsigned` (`seal_value` +
//! `open_value`, format v1) in the same group.
//!
//! Run: `cargo bench -p sealcast-core --features signatures --bench envelope`

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealcast_core::crypto::{Key, KeyRing, Scope, open_fields, seal_fields};
use serde_json::json;
use std::hint::black_box;

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];

fn bench(c: &mut Criterion) {
    let key = Key::from_bytes(&[7; 32]);
    let scope = Scope::chat("room-42", "msg-1").unwrap();
    let cipher = Aes256Gcm::new_from_slice(key.expose_secret()).unwrap();
    let nonce = Nonce::from([3u8; 12]);
    for size in SIZES {
        let mut group = c.benchmark_group(format!("seal_open_{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        let mut ring = KeyRing::single("room-42", 1, key.clone()).unwrap();
        // A JSON string whose serialised form is exactly `size` bytes.
        let event = json!({"body": "x".repeat(size - 2), "sender_id": "user-1"});
        assert_eq!(serde_json::to_string(&event["body"]).unwrap().len(), size);
        group.bench_function("envelope", |b| {
            b.iter_batched_ref(
                || event.clone(),
                |event| {
                    seal_fields(event, &["/body"], &mut ring, "room-42", &scope).unwrap();
                    open_fields(event, &ring, &scope, &["/body"]).unwrap();
                },
                BatchSize::SmallInput,
            )
        });
        let plaintext = vec![b'x'; size];
        let aad = [0u8; 64];
        group.bench_function("raw_aes_gcm", |b| {
            b.iter(|| {
                let ct = cipher.encrypt(&nonce, Payload { msg: black_box(&plaintext), aad: &aad }).unwrap();
                cipher.decrypt(&nonce, Payload { msg: &ct, aad: &aad }).unwrap()
            })
        });
        #[cfg(feature = "signatures")]
        signed(&mut group, &key, &scope, size);
        group.finish();
    }
}

#[cfg(feature = "signatures")]
fn signed(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    key: &Key,
    scope: &Scope,
    size: usize,
) {
    use sealcast_core::crypto::{
        EnvelopeSigner, JsonPointer, OsRng, SignerId, SignerKeys, open_signed_value, open_value,
        seal_signed_value, seal_value,
    };
    struct One([u8; 32]);
    impl SignerKeys for One {
        fn signer_key(&self, _: &str, _: u32, _: &SignerId) -> Option<[u8; 32]> {
            Some(self.0)
        }
        fn requires_signature(&self, _: &str) -> bool {
            true
        }
    }
    let signer = EnvelopeSigner::from_seed(&[5; 32]);
    let signers = One(signer.public_key());
    let path = JsonPointer::root().child("body");
    let value = json!("x".repeat(size - 2));
    group.bench_function("unsigned", |b| {
        b.iter(|| {
            let envelope =
                seal_value(key, "room-42", 1, scope, &path, black_box(&value), &mut OsRng).unwrap();
            open_value(key, scope, &path, &envelope).unwrap()
        })
    });
    group.bench_function("signed", |b| {
        b.iter(|| {
            let envelope =
                seal_signed_value(key, "room-42", 1, scope, &path, black_box(&value), &signer, &mut OsRng)
                    .unwrap();
            open_signed_value(key, scope, &path, &envelope, &signers).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
