//! HKDF-SHA256 key derivation (RFC 5869).
//!
//! Follows the key generation methods of Tiny's RTC encryption guide
//! (`shared/seeds/000_*`), safest first:
//!
//! 1. The app server keeps master keys, salts each document session with
//!    random data it never sends to clients, and hands clients an opaque
//!    identifier as the key hint: [`DerivedKey::with_secret_salt`].
//! 2. A fixed master key per document (or app) and a random salt per
//!    session; the salt itself travels as the key hint, stored in plaintext by
//!    the server (useless without the master): [`DerivedKey::new_session`],
//!    re-derived from the hint with [`DerivedKey::from_hint`].
//! 3. A fixed random key per document: no derivation; use
//!    [`Key::thumbprint`] as the hint if one is wanted.
//!
//! Derivation: `HKDF-SHA256(IKM = master, salt = salt, info, L = 32)` with
//! `info = lp("sealcast/kdf/v1") || lp(purpose) || lp(id)`, `lp` the 4-byte
//! big-endian length prefix. Documents use purpose `document`. Key hints
//! are not secret: never put key material or secrets in them.

use hkdf::Hkdf;
use rand_core::TryCryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{CryptoError, KEY_LEN, Key, OsRng, aad::push_prefixed, b64, rng};

/// Longest key hint accepted, in bytes.
pub const MAX_KEY_HINT_LEN: usize = 256;

/// Purpose label for per-document / per-session keys.
pub const DOCUMENT_PURPOSE: &str = "document";

const INFO_LABEL: &[u8] = b"sealcast/kdf/v1";

/// Derives a key from `master` for `purpose` (e.g. `document`, `room`) and
/// `id` (e.g. the document id), salted with `salt`.
pub fn derive_key(master: &Key, purpose: &str, id: &str, salt: &[u8]) -> Key {
    let mut info = Vec::with_capacity(INFO_LABEL.len() + purpose.len() + id.len() + 12);
    push_prefixed(&mut info, INFO_LABEL);
    push_prefixed(&mut info, purpose.as_bytes());
    push_prefixed(&mut info, id.as_bytes());
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(salt), master.expose_secret())
        .expand(&info, okm.as_mut())
        .expect("32 bytes is far below HKDF-SHA256's 8160-byte output limit");
    Key::from_bytes(&okm)
}

/// The per-document (per-session) key for `doc_id` under `master` and `salt`.
pub fn derive_document_key(master: &Key, doc_id: &str, salt: &[u8]) -> Key {
    derive_key(master, DOCUMENT_PURPOSE, doc_id, salt)
}

/// A derived document key and the non-secret hint that lets clients ask the
/// app for it again. The server stores the hint in plaintext.
#[derive(Debug, Clone)]
pub struct DerivedKey {
    /// The key (secret).
    pub key: Key,
    /// The key hint (not secret).
    pub key_hint: String,
}

impl DerivedKey {
    /// Method 2: a fresh random 128-bit salt for a new session of `doc_id`;
    /// the salt (22 characters of base64url) is the key hint, and the salt
    /// bytes fed to HKDF are the hint's UTF-8 bytes.
    pub fn new_session(master: &Key, doc_id: &str) -> Result<DerivedKey, CryptoError> {
        DerivedKey::new_session_with_rng(master, doc_id, &mut OsRng)
    }

    /// [`DerivedKey::new_session`] with an explicit RNG.
    pub fn new_session_with_rng<R: TryCryptoRng + ?Sized>(
        master: &Key,
        doc_id: &str,
        rng: &mut R,
    ) -> Result<DerivedKey, CryptoError> {
        let mut salt = [0u8; 16];
        rng::fill(rng, &mut salt)?;
        DerivedKey::from_hint(master, doc_id, &b64::encode(&salt))
    }

    /// Method 2, reopening a session: re-derives the key whose hint (salt) is
    /// `key_hint`.
    pub fn from_hint(master: &Key, doc_id: &str, key_hint: &str) -> Result<DerivedKey, CryptoError> {
        check_hint(key_hint)?;
        Ok(DerivedKey {
            key: derive_document_key(master, doc_id, key_hint.as_bytes()),
            key_hint: key_hint.to_owned(),
        })
    }

    /// Method 1: the salt stays on the app server; clients and the realtime
    /// server only ever see `salt_id`, the app's own name for it.
    pub fn with_secret_salt(
        master: &Key,
        doc_id: &str,
        salt: &[u8],
        salt_id: &str,
    ) -> Result<DerivedKey, CryptoError> {
        check_hint(salt_id)?;
        Ok(DerivedKey { key: derive_document_key(master, doc_id, salt), key_hint: salt_id.to_owned() })
    }
}

fn check_hint(hint: &str) -> Result<(), CryptoError> {
    if hint.len() > MAX_KEY_HINT_LEN {
        return Err(CryptoError::InvalidKey { reason: "key hint longer than 256 bytes" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, KeyInit, Mac};

    use super::*;

    fn master() -> Key {
        Key::from_bytes(&[0x42; 32])
    }

    #[test]
    fn deterministic_and_separated() {
        let m = master();
        assert_eq!(derive_document_key(&m, "doc", b"s"), derive_document_key(&m, "doc", b"s"));
        assert_ne!(derive_document_key(&m, "doc", b"s"), derive_document_key(&m, "doc2", b"s"));
        assert_ne!(derive_document_key(&m, "doc", b"s"), derive_document_key(&m, "doc", b"t"));
        assert_ne!(derive_key(&m, "room", "doc", b"s"), derive_document_key(&m, "doc", b"s"));
        assert_ne!(
            derive_document_key(&Key::from_bytes(&[1; 32]), "doc", b"s"),
            derive_document_key(&m, "doc", b"s")
        );
    }

    /// HKDF written out from RFC 5869 with plain HMAC, to pin the info layout.
    #[test]
    fn matches_rfc5869_by_hand() {
        let hmac = |key: &[u8], parts: &[&[u8]]| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            parts.iter().for_each(|p| mac.update(p));
            mac.finalize().into_bytes()
        };
        let prk = hmac(b"salt", &[&[0x42; 32]]);
        let info = b"\0\0\0\x0fsealcast/kdf/v1\0\0\0\x08document\0\0\0\x03doc";
        let t1 = hmac(&prk, &[info, &[1]]);
        assert_eq!(derive_document_key(&master(), "doc", b"salt").expose_secret().as_slice(), t1.as_slice());
    }

    #[test]
    fn session_hint_rederives_the_key() {
        let session = DerivedKey::new_session(&master(), "doc-1").unwrap();
        assert_eq!(session.key_hint.len(), 22);
        let again = DerivedKey::from_hint(&master(), "doc-1", &session.key_hint).unwrap();
        assert_eq!(again.key, session.key);
        let other = DerivedKey::new_session(&master(), "doc-1").unwrap();
        assert_ne!(other.key, session.key);
    }

    #[test]
    fn secret_salt_hint_carries_no_salt() {
        let derived = DerivedKey::with_secret_salt(&master(), "doc", b"server-only-salt", "salt-7").unwrap();
        assert_eq!(derived.key_hint, "salt-7");
        assert_eq!(derived.key, derive_document_key(&master(), "doc", b"server-only-salt"));
        assert!(DerivedKey::with_secret_salt(&master(), "doc", b"s", &"x".repeat(300)).is_err());
    }
}
