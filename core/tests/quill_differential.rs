//! Differential test against the real `quill-delta` npm package:
//! `tests/ot-diff/generate.js` produces random cases with quill-delta's
//! answers; every one must match sealcast-core's. Needs Node and
//! `npm ci` in tests/ot-diff (scripts/test.sh does both), so it is
//! `#[ignore]`d for plain `cargo test`.
//!
//! `OT_DIFF_SEED` picks the seed (printed on every run, so any failure is
//! reproducible); `OT_DIFF_ITERATIONS` the size (6 cases per iteration).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use sealcast_core::ot::Delta;
use serde_json::Value;

#[test]
#[ignore = "needs node and tests/ot-diff/node_modules; run by scripts/test.sh"]
fn matches_quill_delta_on_random_cases() {
    let seed: u32 = std::env::var("OT_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        nanos | 1
    });
    let iterations: usize =
        std::env::var("OT_DIFF_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    println!(
        "quill-delta differential: seed {seed}, {iterations} iterations (OT_DIFF_SEED={seed} to reproduce)"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ot-diff");
    let mut child = Command::new("node")
        .arg("generate.js")
        .arg(seed.to_string())
        .arg(iterations.to_string())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node is installed (scripts/test.sh installs it)");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.is_empty() {
            continue;
        }
        let case: Value = serde_json::from_str(&line).unwrap();
        let kind = case["k"].as_str().unwrap().to_owned();
        let delta =
            |key: &str| Delta::from_json(&case[key]).unwrap_or_else(|e| panic!("{key} of {line}: {e}"));
        let ok = match kind.as_str() {
            "compose" => delta("a").compose(&delta("b")).map(|r| r == delta("r")),
            "transform" => {
                delta("a").transform(&delta("b"), case["p"].as_bool().unwrap()).map(|r| r == delta("r"))
            }
            "invert" => delta("a").invert(&delta("b")).map(|r| r == delta("r")),
            "position" => {
                let index = case["i"].as_u64().unwrap() as usize;
                Ok(delta("a").transform_position(index, case["p"].as_bool().unwrap()) as u64
                    == case["r"].as_u64().unwrap())
            }
            other => panic!("unknown case kind {other}"),
        };
        *counts.entry(kind).or_default() += 1;
        if ok != Ok(true) && failures.len() < 5 {
            failures.push(format!("{ok:?}: {line}"));
        }
    }
    assert!(
        child.wait().unwrap().success(),
        "generator failed (is quill-delta installed? cd tests/ot-diff && npm ci)"
    );
    let total: usize = counts.values().sum();
    println!("checked {total} cases: {counts:?}");
    assert!(failures.is_empty(), "seed {seed}: mismatches with quill-delta:\n{}", failures.join("\n"));
    assert!(total >= iterations * 6, "generator produced only {total} cases");
}
