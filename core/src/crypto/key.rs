//! [`Key`]: 32 secret bytes for AES-256-GCM envelopes.

use core::fmt;

use aes_gcm::{Aes256Gcm, KeyInit};
use hmac::Hmac;
use rand_core::TryCryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{CryptoError, OsRng, b64, rng};

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// A 256-bit symmetric key.
///
/// The bytes are zeroized on drop (so are the expanded AES and HMAC states
/// kept alongside them), equality is constant-time, and `Debug` shows only a
/// non-secret [`thumbprint`](Key::thumbprint). Export is explicit:
/// [`Key::to_base64url`].
#[derive(Clone)]
pub struct Key {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    // Expanded once per key, not per envelope: AES key schedule and the HMAC
    // inner/outer pad states. Both zeroize themselves on drop.
    pub(crate) cipher: Aes256Gcm,
    pub(crate) commit_mac: Hmac<Sha256>,
}

impl Key {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Key, CryptoError> {
        Key::generate_with_rng(&mut OsRng)
    }

    /// A fresh random key from `rng`.
    pub fn generate_with_rng<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Key, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng::fill(rng, bytes.as_mut())?;
        Ok(Key::from_bytes(&bytes))
    }

    /// A key from its raw bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Key {
        let cipher = Aes256Gcm::new(bytes.into());
        let commit_mac = keyed_mac(bytes);
        Key { bytes: Zeroizing::new(*bytes), cipher, commit_mac }
    }

    /// A key from a slice that must be exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Key, CryptoError> {
        let array: &[u8; KEY_LEN] =
            bytes.try_into().map_err(|_| CryptoError::InvalidKey { reason: "a key is exactly 32 bytes" })?;
        Ok(Key::from_bytes(array))
    }

    /// Imports a key exported by [`Key::to_base64url`] (43 characters of
    /// unpadded base64url).
    pub fn from_base64url(text: &str) -> Result<Key, CryptoError> {
        let bytes = Zeroizing::new(b64::decode_array::<KEY_LEN>(
            text.trim(),
            "key",
            CryptoError::InvalidKey { reason: "a key is 43 characters of unpadded base64url (32 bytes)" },
        )?);
        Ok(Key::from_bytes(&bytes))
    }

    /// Exports the key as unpadded base64url. The result is secret.
    pub fn to_base64url(&self) -> String {
        b64::encode(self.bytes.as_ref())
    }

    /// The raw key bytes. Secret: for derivation and export only.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// A non-secret identifier of the key, safe to store in plaintext (for
    /// example as a key hint): the first 16 bytes of
    /// `SHA-256("sealcast/v1/thumbprint" || key)`, base64url.
    pub fn thumbprint(&self) -> String {
        let digest =
            Sha256::new().chain_update(THUMBPRINT_LABEL).chain_update(self.bytes.as_ref()).finalize();
        b64::encode(&digest[..16])
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.bytes.as_ref().ct_eq(other.bytes.as_ref()).into()
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("thumbprint", &self.thumbprint()).finish_non_exhaustive()
    }
}

const THUMBPRINT_LABEL: &[u8] = b"sealcast/v1/thumbprint";

/// HMAC-SHA256 keyed with `key`, prepared once per key (the key
/// commitment's MAC, `crate::crypto::commit`, and op ids' MAC).
pub(crate) fn keyed_mac(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trip() {
        let key = Key::generate().unwrap();
        let text = key.to_base64url();
        assert_eq!(text.len(), 43);
        assert_eq!(Key::from_base64url(&text).unwrap(), key);
    }

    #[test]
    fn import_rejects_bad_input() {
        for bad in ["", "abc", "A".repeat(44).as_str(), &"A".repeat(42), "+".repeat(43).as_str()] {
            assert!(Key::from_base64url(bad).is_err(), "{bad:?} accepted");
        }
        // 43 chars but non-zero trailing bits: not a canonical encoding.
        let mut text = Key::from_bytes(&[0; 32]).to_base64url();
        text.pop();
        text.push('B');
        assert!(matches!(Key::from_base64url(&text), Err(CryptoError::InvalidBase64 { .. })));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = Key::from_bytes(&[0xAB; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.to_base64url()));
        assert!(!shown.to_lowercase().contains("abab"));
        assert!(shown.contains(&key.thumbprint()));
    }

    #[test]
    fn equality_compares_bytes() {
        assert_eq!(Key::from_bytes(&[1; 32]), Key::from_bytes(&[1; 32]));
        assert_ne!(Key::from_bytes(&[1; 32]), Key::from_bytes(&[2; 32]));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(Key::generate().unwrap(), Key::generate().unwrap());
    }
}
