//! The native side of scripts/bench/web.mjs: the same workload as
//! examples/web/bench.js (a sealed chat event sealed and opened; a Delta
//! compose and transform), through the same core calls the wasm helpers
//! make, JSON in and out. Prints ns per call as JSON.
//!
//! ```sh
//! cargo run --release -p sealcast-wasm --example native_bench
//! ```

use std::hint::black_box;
use std::time::Instant;

use sealcast_core::client::sealed::{open_event, seal_event};
use sealcast_core::crypto::{Key, KeyRing, Scope};
use sealcast_core::ot::Delta;
use serde_json::{Value, json};

fn time(n: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..n.min(200) {
        f(i);
    }
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let body =
        "Let's meet at the usual place at seven — bring the documents 📄 and don't tell anyone. ".repeat(2);
    let ops: Vec<Value> = (0..40)
        .map(|i| {
            let mut op = json!({"insert": format!("paragraph {i} with some text; ")});
            if i % 3 == 0 {
                op["attributes"] = json!({"bold": true});
            }
            op
        })
        .collect();
    let document = json!({"ops": ops}).to_string();
    let change = json!({"ops": [{"retain": 600}, {"insert": "typed 👋"}, {"delete": 3}]}).to_string();
    let other =
        json!({"ops": [{"retain": 598}, {"delete": 5}, {"insert": "x", "attributes": {"italic": true}}]})
            .to_string();
    let key = Key::generate()?;

    let seal_open = time(2000, |i| {
        let id = format!("m-{i}");
        let scope: Scope = format!("chat:room:{id}").parse().expect("scope");
        let mut ring = KeyRing::single("room", 1, key.clone()).expect("ring");
        let mut data: Value =
            serde_json::from_str(&json!({"body": body, "id": id}).to_string()).expect("json");
        seal_event(&mut data, &["/body"], &mut ring, "room", &scope).expect("seal");
        let sealed = data.to_string();
        let mut data: Value = serde_json::from_str(&sealed).expect("json");
        let ring = KeyRing::single("room", 1, key.clone()).expect("ring");
        open_event(&mut data, &ring).expect("open");
        assert_eq!(data["body"], body.as_str());
        black_box(data.to_string());
    });
    let compose = time(5000, |_| {
        let (a, b) = (Delta::from_json_str(&document).expect("a"), Delta::from_json_str(&change).expect("b"));
        black_box(a.compose(&b).expect("compose").to_json_string());
    });
    let transform = time(5000, |_| {
        let (a, b) = (Delta::from_json_str(&change).expect("a"), Delta::from_json_str(&other).expect("b"));
        black_box(a.transform(&b, true).expect("transform").to_json_string());
    });
    if std::env::var("SPLIT").is_ok() {
        let parse = time(5000, |_| {
            black_box(Delta::from_json_str(&document).expect("a"));
        });
        let (a, b) = (Delta::from_json_str(&document)?, Delta::from_json_str(&change)?);
        let only = time(5000, |_| {
            black_box(a.compose(&b).expect("compose"));
        });
        let composed = a.compose(&b)?;
        let out = time(5000, |_| {
            black_box(composed.to_json_string());
        });
        eprintln!("parse {parse:.0} ns, compose {only:.0} ns, serialize {out:.0} ns");
    }
    println!(
        "{}",
        json!({"sealOpenChat": seal_open, "nativeCompose": compose, "nativeTransform": transform})
    );
    Ok(())
}
