//! Sender signatures (envelope format v2, `docs/envelope.md` §11): an
//! envelope sealed under a key a whole group holds says *which member*
//! sealed it, so one member cannot write as another.
//!
//! A v2 envelope carries `sdr`, the [`SignerId`] of the sender's Ed25519
//! key, and `sig`, its signature over the envelope's AAD (which itself
//! binds `sdr`, so the sender cannot be swapped without breaking the GCM
//! tag), nonce, ciphertext and key commitment. Who may sign under a key is
//! the caller's to say ([`SignerKeys`]: in the device-keys mode, the
//! members of the group's epoch). Parsing v2 needs nothing more; signing
//! and verifying need the `signatures` feature (Ed25519), which builds that
//! do not use signed envelopes (the browser's chat page) leave out.

use sha2::{Digest, Sha256};

#[cfg(feature = "signatures")]
use super::aad::push_prefixed;
use super::b64;

/// Key ids of the device-keys mode's epoch keys start with this; an
/// envelope under such a key must be signed, whichever API opens it.
pub const SIGNED_KID_PREFIX: &str = "mls.";

/// Bytes of a signer id.
pub const SIGNER_ID_LEN: usize = 16;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

const SIGNER_LABEL: &[u8] = b"sealcast/v2/signer";
#[cfg(feature = "signatures")]
const SIGNATURE_LABEL: &[u8] = b"sealcast/envelope-signature";

/// Names a signing key: the first 16 bytes of
/// `SHA-256("sealcast/v2/signer" || Ed25519 public key)`. It says nothing
/// about who holds the key (that is the group's to say) and reveals no id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignerId(pub [u8; SIGNER_ID_LEN]);

impl SignerId {
    /// The id of an Ed25519 public key.
    pub fn of(public_key: &[u8; 32]) -> SignerId {
        let digest = Sha256::new().chain_update(SIGNER_LABEL).chain_update(public_key).finalize();
        let mut id = [0; SIGNER_ID_LEN];
        id.copy_from_slice(&digest[..SIGNER_ID_LEN]);
        SignerId(id)
    }

    /// The id as unpadded base64url (the envelope's `sdr`).
    pub fn to_base64url(&self) -> String {
        b64::encode(&self.0)
    }
}

impl std::fmt::Debug for SignerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerId({})", self.to_base64url())
    }
}

/// What a v2 envelope carries besides the v1 fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderSignature {
    /// The signing key's id (`sdr`).
    pub signer: SignerId,
    /// The Ed25519 signature (`sig`).
    pub sig: [u8; SIGNATURE_LEN],
}

/// The bytes a sender signs: `lp("sealcast/envelope-signature") || lp(AAD)
/// || iv || lp(ct) || kc`.
#[cfg(feature = "signatures")]
pub(crate) fn signed_bytes(aad: &[u8], iv: &[u8], ct: &[u8], kc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_LABEL.len() + aad.len() + ct.len() + 64);
    push_prefixed(&mut out, SIGNATURE_LABEL);
    push_prefixed(&mut out, aad);
    out.extend_from_slice(iv);
    push_prefixed(&mut out, ct);
    out.extend_from_slice(kc);
    out
}

#[cfg(feature = "signatures")]
pub use signing::{EnvelopeSigner, SignerKeys};

#[cfg(feature = "signatures")]
mod signing {
    use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
    use zeroize::Zeroize as _;

    use super::{SIGNATURE_LEN, SignerId};

    /// A sender's Ed25519 signing key. `Debug` shows only its id.
    pub struct EnvelopeSigner {
        key: SigningKey,
        id: SignerId,
    }

    impl EnvelopeSigner {
        /// The signer of a 32-byte Ed25519 seed (the caller zeroizes its copy).
        pub fn from_seed(seed: &[u8; 32]) -> EnvelopeSigner {
            let key = SigningKey::from_bytes(seed);
            let id = SignerId::of(key.verifying_key().as_bytes());
            EnvelopeSigner { key, id }
        }

        /// A new signer from the OS's randomness.
        pub fn generate() -> Result<EnvelopeSigner, crate::crypto::CryptoError> {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|_| crate::crypto::CryptoError::RandomnessUnavailable)?;
            let signer = EnvelopeSigner::from_seed(&seed);
            seed.zeroize();
            Ok(signer)
        }

        /// Its id (`sdr`).
        pub fn id(&self) -> SignerId {
            self.id
        }

        /// Its public key.
        pub fn public_key(&self) -> [u8; 32] {
            self.key.verifying_key().to_bytes()
        }

        pub(crate) fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
            self.key.sign(message).to_bytes()
        }
    }

    impl std::fmt::Debug for EnvelopeSigner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "EnvelopeSigner({:?})", self.id)
        }
    }

    /// Who may sign under a key: the opener's answer to "whose key is
    /// `signer` under `kid`/`kv`", and whether `kid` requires signatures.
    pub trait SignerKeys {
        /// The Ed25519 public key of `signer` if it may seal under
        /// `kid`/`kv` (in the device-keys mode: a member of that epoch).
        fn signer_key(&self, kid: &str, kv: u32, signer: &SignerId) -> Option<[u8; 32]>;

        /// Whether envelopes under `kid` must be signed (an unsigned one is
        /// refused with `SignatureRequired`).
        fn requires_signature(&self, kid: &str) -> bool;
    }

    /// Whether `sig` is `public_key`'s signature of `message` (strict
    /// verification: no malleable or small-order forms).
    pub(crate) fn verify(public_key: &[u8; 32], message: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
        VerifyingKey::from_bytes(public_key)
            .is_ok_and(|key| key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig)).is_ok())
    }
}

#[cfg(feature = "signatures")]
pub(crate) use signing::verify;
