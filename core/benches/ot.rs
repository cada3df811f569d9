//! Delta transform/compose throughput, for the comparison with quill-delta
//! on Node in docs/benchmarks.md (`tests/ot-diff/bench.js` runs the same
//! cases through quill-delta).
//!
//! Cases: the first 2,000 iterations of `node tests/ot-diff/generate.js 42 2000`
//! (compose pairs and transform pairs), read from the generator's output
//! file given in `OT_BENCH_CASES` (default `target/ot-bench-cases.jsonl`).
//!
//! Run: `node tests/ot-diff/generate.js 42 2000 > target/ot-bench-cases.jsonl &&
//!       cargo bench -p sealcast-core --bench ot`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sealcast_core::ot::Delta;
use serde_json::Value;
use std::hint::black_box;

/// Delta pairs to combine.
type Pairs = Vec<(Delta, Delta)>;

fn load() -> (Pairs, Pairs) {
    let path = std::env::var("OT_BENCH_CASES").unwrap_or_else(|_| "../target/ot-bench-cases.jsonl".into());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{path}: generate it first (see the file header)"));
    let (mut compose, mut transform) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let pair = || (Delta::from_json(&case["a"]).unwrap(), Delta::from_json(&case["b"]).unwrap());
        match case["k"].as_str() {
            Some("compose") => compose.push(pair()),
            Some("transform") if case["p"] == true => transform.push(pair()),
            _ => {}
        }
    }
    (compose, transform)
}

fn bench(c: &mut Criterion) {
    let (compose, transform) = load();
    let mut group = c.benchmark_group("ot");
    group.throughput(Throughput::Elements(compose.len() as u64));
    group.bench_function("compose_all", |b| {
        b.iter(|| {
            for (x, y) in &compose {
                black_box(x.compose(y).unwrap());
            }
        })
    });
    group.throughput(Throughput::Elements(transform.len() as u64));
    group.bench_function("transform_all", |b| {
        b.iter(|| {
            for (x, y) in &transform {
                black_box(x.transform(y, true).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
