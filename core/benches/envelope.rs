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
//! Run: `cargo bench -p sealcast-core --bench envelope`

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
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
