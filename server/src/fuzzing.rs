//! Entry points for the cargo-fuzz targets in `server/fuzz/` (compiled only
//! under `--cfg fuzzing`). Each must never panic on any input.

use crate::jwt::{JwtKeyConfig, TokenVerifier};

/// Untrusted bytes as a subscription token: verification must fail cleanly.
pub fn jwt_verify(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let key = JwtKeyConfig {
        kid: "k".into(),
        // The RFC 8037 example Ed25519 public key.
        alg: "EdDSA".into(),
        x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        y: None,
    };
    let verifier = TokenVerifier::from_config(&[key]).expect("static key is valid");
    let _ = verifier.verify(token, "app", "1.1", "private-x", token.len() % 2 == 0, 1_800_000_000);
}

#[cfg(test)]
mod tests {
    /// Replays the committed seed corpus (`seed-*`) of every target.
    #[test]
    fn corpus_replays_without_panics() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/jwt_verify");
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).expect("corpus directory") {
            let path = entry.expect("corpus entry").path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
                super::jwt_verify(&std::fs::read(&path).expect("corpus file"));
                replayed += 1;
            }
        }
        assert!(replayed >= 3, "only {replayed} seeds");
    }
}
