//! Key commitment: a value that ties an envelope to exactly one key.
//!
//! AES-GCM alone is not key-committing: an attacker who knows two keys can
//! craft one ciphertext that decrypts under both ("invisible salamanders",
//! partitioning-oracle attacks). Each envelope therefore carries
//! `kc = HMAC-SHA256(key, "sealcast/v1/commit" || iv)`, which the opener
//! recomputes and compares in constant time *before* decrypting. Two keys
//! giving the same `kc` for one `iv` would be a collision of HMAC-SHA256
//! (keys of 32 bytes are zero-padded to the block, not hashed, so distinct
//! keys give distinct HMAC instances), so an envelope opens under one key
//! only. Binding the nonce makes `kc` differ per envelope, so it is no
//! standing key fingerprint. Rationale and layout: `docs/envelope.md`.

use hmac::Mac;
use subtle::ConstantTimeEq;

use super::Key;

/// Length of an envelope's IV (the AES-GCM nonce), which the commitment
/// binds; the envelope's fields use it too.
pub(crate) const IV_LEN: usize = 12;

/// Length of the commitment in bytes.
pub(crate) const COMMIT_LEN: usize = 32;

const COMMIT_LABEL: &[u8] = b"sealcast/v1/commit";

/// `HMAC-SHA256(key, "sealcast/v1/commit" || iv)`.
pub(crate) fn commitment(key: &Key, iv: &[u8; IV_LEN]) -> [u8; COMMIT_LEN] {
    let mut mac = key.commit_mac.clone();
    mac.update(COMMIT_LABEL);
    mac.update(iv);
    mac.finalize().into_bytes().into()
}

/// Constant-time check of a received commitment.
pub(crate) fn verify(key: &Key, iv: &[u8; IV_LEN], received: &[u8; COMMIT_LEN]) -> bool {
    commitment(key, iv).ct_eq(received).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit};
    use sha2::Sha256;

    #[test]
    fn commitment_depends_on_key_and_iv() {
        let a = Key::from_bytes(&[1; 32]);
        let b = Key::from_bytes(&[2; 32]);
        let iv = [7; IV_LEN];
        assert_ne!(commitment(&a, &iv), commitment(&b, &iv));
        assert_ne!(commitment(&a, &iv), commitment(&a, &[8; IV_LEN]));
        assert!(verify(&a, &iv, &commitment(&a, &iv)));
        assert!(!verify(&b, &iv, &commitment(&a, &iv)));
    }

    #[test]
    fn matches_a_plain_hmac() {
        // The precomputed per-key state must equal a from-scratch HMAC.
        let key = Key::from_bytes(&[9; 32]);
        let iv = [3; IV_LEN];
        let mut fresh = <Hmac<Sha256> as KeyInit>::new_from_slice(&[9; 32]).unwrap();
        fresh.update(b"sealcast/v1/commit");
        fresh.update(&iv);
        assert_eq!(commitment(&key, &iv).as_slice(), fresh.finalize().into_bytes().as_slice());
    }
}
