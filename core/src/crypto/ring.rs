//! [`KeyRing`]: keys by key id (`kid`) and version (`kv`), with rotation.
//!
//! Sealing always uses the *current* (newest) version of a kid; opening
//! uses whichever version the envelope names, so messages sealed before a
//! rotation still open. Old versions leave the ring only when the app says
//! so ([`KeyRing::remove_version`], [`KeyRing::retire_before`]).
//!
//! The ring also counts envelopes sealed per key version. Random 96-bit
//! nonces keep the chance of a nonce collision under 2^-32 only up to 2^32
//! envelopes per key (NIST SP 800-38D §8.3); the ring reports
//! [`KeyRing::needs_rotation`] from [`SEAL_SOFT_LIMIT`] on and refuses to seal
//! at [`SEAL_HARD_LIMIT`]. The count is per ring instance: when several
//! devices seal under one key, the key's real usage is their sum, so apps
//! should also rotate on a schedule (see `docs/envelope.md`).

use std::collections::{BTreeMap, HashMap};

use rand_core::TryCryptoRng;
use serde_json::Value;

use super::envelope::validate_kid;
use super::{CryptoError, Envelope, JsonPointer, Key, OsRng, Scope, open_value, seal_value};

/// Envelopes per key version after which [`KeyRing::needs_rotation`] is true (2^31).
pub const SEAL_SOFT_LIMIT: u64 = 1 << 31;
/// Envelopes per key version after which sealing fails with
/// [`CryptoError::KeyExhausted`] (2^32, the NIST bound for random nonces).
pub const SEAL_HARD_LIMIT: u64 = 1 << 32;

/// Keys by kid and version. Cheap to create; holds expanded AES states.
#[derive(Debug)]
pub struct KeyRing {
    kids: HashMap<String, Versions>,
    soft_limit: u64,
    hard_limit: u64,
}

#[derive(Debug, Default)]
struct Versions {
    // BTreeMap so the current version is simply the largest.
    keys: BTreeMap<u32, Slot>,
}

#[derive(Debug)]
struct Slot {
    key: Key,
    sealed: u64,
}

impl Default for KeyRing {
    fn default() -> Self {
        KeyRing::new()
    }
}

impl KeyRing {
    /// An empty ring with the standard usage limits.
    pub fn new() -> KeyRing {
        KeyRing { kids: HashMap::new(), soft_limit: SEAL_SOFT_LIMIT, hard_limit: SEAL_HARD_LIMIT }
    }

    /// A ring holding one key.
    pub fn single(kid: &str, kv: u32, key: Key) -> Result<KeyRing, CryptoError> {
        let mut ring = KeyRing::new();
        ring.insert(kid, kv, key)?;
        Ok(ring)
    }

    /// Overrides the usage limits (for tests and for apps that want to rotate
    /// far earlier). `soft` is clamped to at most `hard`, and `hard` to at
    /// most [`SEAL_HARD_LIMIT`].
    pub fn with_usage_limits(mut self, soft: u64, hard: u64) -> KeyRing {
        self.hard_limit = hard.min(SEAL_HARD_LIMIT);
        self.soft_limit = soft.min(self.hard_limit);
        self
    }

    /// Adds `key` as version `kv` of `kid`. The newest version of a kid is
    /// the one used for sealing. Re-inserting the same key is a no-op; a
    /// different key under an existing kid/kv is a [`CryptoError::KeyConflict`].
    pub fn insert(&mut self, kid: &str, kv: u32, key: Key) -> Result<(), CryptoError> {
        validate_kid(kid)?;
        let versions = self.kids.entry(kid.to_owned()).or_default();
        match versions.keys.get(&kv) {
            Some(slot) if slot.key == key => Ok(()),
            Some(_) => Err(CryptoError::KeyConflict { kid: kid.to_owned(), kv }),
            None => {
                versions.keys.insert(kv, Slot { key, sealed: 0 });
                Ok(())
            }
        }
    }

    /// Rotates `kid`: adds `key` as the next version (1 for a new kid) and
    /// returns that version. Older versions stay for opening.
    pub fn rotate(&mut self, kid: &str, key: Key) -> Result<u32, CryptoError> {
        let next = match self.current_version(kid) {
            None => 1,
            Some(kv) => kv
                .checked_add(1)
                .ok_or(CryptoError::InvalidKeyId { reason: "key version space exhausted" })?,
        };
        self.insert(kid, next, key)?;
        Ok(next)
    }

    /// The version of `kid` used for sealing.
    pub fn current_version(&self, kid: &str) -> Option<u32> {
        self.kids.get(kid)?.keys.keys().next_back().copied()
    }

    /// The key at `kid`/`kv`, if held.
    pub fn get(&self, kid: &str, kv: u32) -> Option<&Key> {
        Some(&self.kids.get(kid)?.keys.get(&kv)?.key)
    }

    /// True when `kid` holds version `kv`.
    pub fn contains(&self, kid: &str, kv: u32) -> bool {
        self.get(kid, kv).is_some()
    }

    /// Versions of `kid` held, oldest first.
    pub fn versions(&self, kid: &str) -> Vec<u32> {
        self.kids.get(kid).map(|v| v.keys.keys().copied().collect()).unwrap_or_default()
    }

    /// Removes one version; returns whether it was present. Envelopes sealed
    /// under it can no longer be opened by this ring.
    pub fn remove_version(&mut self, kid: &str, kv: u32) -> bool {
        let Some(versions) = self.kids.get_mut(kid) else {
            return false;
        };
        let removed = versions.keys.remove(&kv).is_some();
        if versions.keys.is_empty() {
            self.kids.remove(kid);
        }
        removed
    }

    /// Removes every version of `kid` older than `kv`; returns how many.
    pub fn retire_before(&mut self, kid: &str, kv: u32) -> usize {
        let Some(versions) = self.kids.get_mut(kid) else {
            return 0;
        };
        let keep = versions.keys.split_off(&kv);
        let removed = versions.keys.len();
        versions.keys = keep;
        if versions.keys.is_empty() {
            self.kids.remove(kid);
        }
        removed
    }

    /// Envelopes sealed by this ring under `kid`/`kv`.
    pub fn sealed_count(&self, kid: &str, kv: u32) -> u64 {
        self.kids.get(kid).and_then(|v| v.keys.get(&kv)).map_or(0, |slot| slot.sealed)
    }

    /// True when the current version of `kid` has sealed at least the soft
    /// limit of envelopes: the app should rotate now.
    pub fn needs_rotation(&self, kid: &str) -> bool {
        self.current_version(kid).is_some_and(|kv| self.sealed_count(kid, kv) >= self.soft_limit)
    }

    /// Seals `value` with the current version of `kid` (see [`seal_value`]).
    pub fn seal(
        &mut self,
        kid: &str,
        scope: &Scope,
        path: &JsonPointer,
        value: &Value,
    ) -> Result<Envelope, CryptoError> {
        self.seal_with_rng(kid, scope, path, value, &mut OsRng)
    }

    /// [`KeyRing::seal`] with an explicit RNG.
    pub fn seal_with_rng<R: TryCryptoRng + ?Sized>(
        &mut self,
        kid: &str,
        scope: &Scope,
        path: &JsonPointer,
        value: &Value,
        rng: &mut R,
    ) -> Result<Envelope, CryptoError> {
        self.seal_current(kid, |key, kv| seal_value(key, kid, kv, scope, path, value, rng))
    }

    /// Seals like [`KeyRing::seal_with_rng`], signed by `signer` (format v2).
    #[cfg(feature = "signatures")]
    pub fn seal_signed_with_rng<R: TryCryptoRng + ?Sized>(
        &mut self,
        kid: &str,
        scope: &Scope,
        path: &JsonPointer,
        value: &Value,
        signer: &super::EnvelopeSigner,
        rng: &mut R,
    ) -> Result<Envelope, CryptoError> {
        self.seal_current(kid, |key, kv| {
            super::seal_signed_value(key, kid, kv, scope, path, value, signer, rng)
        })
    }

    /// Runs `seal` with the current version of `kid`, within the usage
    /// limit, and counts the envelope.
    fn seal_current(
        &mut self,
        kid: &str,
        seal: impl FnOnce(&Key, u32) -> Result<Envelope, CryptoError>,
    ) -> Result<Envelope, CryptoError> {
        let hard_limit = self.hard_limit;
        let (kv, slot) = self
            .kids
            .get_mut(kid)
            .and_then(|v| v.keys.iter_mut().next_back())
            .ok_or_else(|| CryptoError::UnknownKey { kid: kid.to_owned(), kv: 0 })?;
        if slot.sealed >= hard_limit {
            return Err(CryptoError::KeyExhausted { kid: kid.to_owned(), kv: *kv, limit: hard_limit });
        }
        let envelope = seal(&slot.key, *kv)?;
        slot.sealed += 1;
        Ok(envelope)
    }

    /// Opens `envelope` with the key it names (see [`open_value`]).
    pub fn open(&self, scope: &Scope, path: &JsonPointer, envelope: &Envelope) -> Result<Value, CryptoError> {
        open_value(self.key_of(envelope)?, scope, path, envelope)
    }

    /// Opens `envelope` checking its sender against `signers` (see
    /// [`super::open_signed_value`]); the value and who signed it.
    #[cfg(feature = "signatures")]
    pub fn open_signed(
        &self,
        scope: &Scope,
        path: &JsonPointer,
        envelope: &Envelope,
        signers: &dyn super::SignerKeys,
    ) -> Result<(Value, Option<super::SignerId>), CryptoError> {
        super::open_signed_value(self.key_of(envelope)?, scope, path, envelope, signers)
    }

    fn key_of(&self, envelope: &Envelope) -> Result<&Key, CryptoError> {
        self.get(&envelope.kid, envelope.kv)
            .ok_or_else(|| CryptoError::UnknownKey { kid: envelope.kid.clone(), kv: envelope.kv })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope() -> Scope {
        Scope::chat("room", "m1").unwrap()
    }

    #[test]
    fn rotation_keeps_old_envelopes_openable() {
        let mut ring = KeyRing::new();
        assert_eq!(ring.rotate("room", Key::generate().unwrap()).unwrap(), 1);
        let old = ring.seal("room", &scope(), &JsonPointer::root(), &json!("before")).unwrap();
        assert_eq!(ring.rotate("room", Key::generate().unwrap()).unwrap(), 2);
        let new = ring.seal("room", &scope(), &JsonPointer::root(), &json!("after")).unwrap();
        assert_eq!((old.kv, new.kv), (1, 2));
        assert_eq!(ring.open(&scope(), &JsonPointer::root(), &old).unwrap(), json!("before"));
        assert_eq!(ring.open(&scope(), &JsonPointer::root(), &new).unwrap(), json!("after"));

        assert_eq!(ring.retire_before("room", 2), 1);
        let err = ring.open(&scope(), &JsonPointer::root(), &old).unwrap_err();
        assert!(matches!(err, CryptoError::UnknownKey { kv: 1, .. }));
        assert_eq!(ring.versions("room"), vec![2]);
    }

    #[test]
    fn insert_is_idempotent_but_versions_are_immutable() {
        let key = Key::from_bytes(&[1; 32]);
        let mut ring = KeyRing::single("k", 3, key.clone()).unwrap();
        ring.insert("k", 3, key).unwrap();
        let err = ring.insert("k", 3, Key::from_bytes(&[2; 32])).unwrap_err();
        assert!(matches!(err, CryptoError::KeyConflict { kv: 3, .. }));
        // An older version joins without becoming current.
        ring.insert("k", 1, Key::from_bytes(&[3; 32])).unwrap();
        assert_eq!(ring.current_version("k"), Some(3));
    }

    #[test]
    fn usage_limits() {
        let mut ring = KeyRing::single("k", 1, Key::from_bytes(&[1; 32])).unwrap().with_usage_limits(2, 3);
        let seal = |ring: &mut KeyRing| ring.seal("k", &scope(), &JsonPointer::root(), &json!(1));
        seal(&mut ring).unwrap();
        assert!(!ring.needs_rotation("k"));
        seal(&mut ring).unwrap();
        assert!(ring.needs_rotation("k"));
        seal(&mut ring).unwrap();
        assert!(matches!(seal(&mut ring), Err(CryptoError::KeyExhausted { limit: 3, .. })));
        ring.rotate("k", Key::from_bytes(&[2; 32])).unwrap();
        assert!(!ring.needs_rotation("k"));
        seal(&mut ring).unwrap();
    }

    #[test]
    fn unknown_kid_for_sealing() {
        let mut ring = KeyRing::new();
        let err = ring.seal("nope", &scope(), &JsonPointer::root(), &json!(1)).unwrap_err();
        assert_eq!(err.code(), "unknown_key");
    }

    #[test]
    fn removing_the_last_version_forgets_the_kid() {
        let mut ring = KeyRing::single("k", 1, Key::from_bytes(&[1; 32])).unwrap();
        assert!(ring.remove_version("k", 1));
        assert!(!ring.remove_version("k", 1));
        assert_eq!(ring.current_version("k"), None);
    }
}
