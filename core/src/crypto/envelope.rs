//! [`Envelope`] v1: one sealed JSON value.
//!
//! JSON form (`docs/envelope.md` is the normative spec):
//!
//! ```json
//! {"v":1,"alg":"A256GCM","kid":"room-42","kv":1,"iv":"…","ct":"…","kc":"…"}
//! ```
//!
//! `iv` is the 96-bit random nonce, `ct` the AES-256-GCM ciphertext with the
//! 128-bit tag appended, `kc` the key commitment ([`super::commit`]), all
//! unpadded base64url. The plaintext is the compact JSON text of the sealed
//! value. The AAD ([`super::aad`]) binds version, alg, kid, kv, scope and
//! field path. Version 2 adds the sender's signature (`sdr`, `sig`:
//! [`super::signature`]); its AAD also binds `sdr`.

use aes_gcm::Nonce;
use aes_gcm::aead::AeadInOut;
use rand_core::TryCryptoRng;
use serde_json::{Map, Value};

use super::commit::{self, COMMIT_LEN, IV_LEN};
use super::signature::{SIGNATURE_LEN, SIGNER_ID_LEN, SenderSignature, SignerId};
use super::{CryptoError, JsonPointer, Key, Scope, aad, b64, plaintext, rng};

/// The envelope format version of unsigned envelopes.
pub const VERSION: u8 = 1;
/// The envelope format version of envelopes with a sender signature.
pub const SIGNED_VERSION: u8 = 2;
/// The one algorithm of version 1.
pub const ALG: &str = "A256GCM";
/// Largest plaintext (the sealed value's JSON text) sealed or opened, in bytes.
pub const MAX_SEALED_BYTES: usize = 1 << 20;
/// Longest key id, in bytes.
pub const MAX_KID_LEN: usize = 128;

const TAG_LEN: usize = 16;
const FIELDS: [&str; 9] = ["v", "alg", "kid", "kv", "iv", "ct", "kc", "sdr", "sig"];

/// A parsed envelope. Holding one says nothing about authenticity: only
/// [`open_value`] (or the ring and field helpers built on it) checks that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Key id.
    pub kid: String,
    /// Key version.
    pub kv: u32,
    /// Nonce.
    pub iv: [u8; IV_LEN],
    /// Ciphertext followed by the 16-byte GCM tag.
    pub ct: Vec<u8>,
    /// Key commitment.
    pub kc: [u8; COMMIT_LEN],
    /// The sender's signature (format v2), if signed.
    pub signature: Option<SenderSignature>,
}

impl Envelope {
    /// The envelope as the JSON object that replaces the sealed field.
    pub fn to_json(&self) -> Value {
        let mut map = Map::with_capacity(FIELDS.len());
        let version = if self.signature.is_some() { SIGNED_VERSION } else { VERSION };
        map.insert("v".into(), version.into());
        map.insert("alg".into(), ALG.into());
        map.insert("kid".into(), self.kid.clone().into());
        map.insert("kv".into(), self.kv.into());
        map.insert("iv".into(), b64::encode(&self.iv).into());
        map.insert("ct".into(), b64::encode(&self.ct).into());
        map.insert("kc".into(), b64::encode(&self.kc).into());
        if let Some(signature) = &self.signature {
            map.insert("sdr".into(), b64::encode(&signature.signer.0).into());
            map.insert("sig".into(), b64::encode(&signature.sig).into());
        }
        Value::Object(map)
    }

    /// Parses an envelope object strictly: exactly the seven fields of
    /// version 1 (or the nine of version 2), right types, canonical
    /// base64url, alg `A256GCM`, sizes in bounds.
    pub fn from_json<'a>(value: &'a Value) -> Result<Envelope, CryptoError> {
        let malformed = |reason| CryptoError::MalformedEnvelope { reason };
        let map = value.as_object().ok_or(malformed("not a JSON object"))?;
        // Version first: a future format may have other fields, and should
        // be reported as "newer version", not as "malformed".
        let version = map.get("v").ok_or(malformed("missing `v`"))?;
        let version = version.as_u64().ok_or(malformed("`v` is not a non-negative integer"))?;
        let signed = match version {
            1 => false,
            2 => true,
            version => return Err(CryptoError::UnsupportedVersion { version }),
        };
        let fields_error = if signed {
            malformed("fields must be exactly v, alg, kid, kv, iv, ct, kc, sdr, sig")
        } else {
            malformed("fields must be exactly v, alg, kid, kv, iv, ct, kc")
        };
        // One pass over the entries (no per-field hashing); a JSON object
        // has unique keys, so the known keys and nothing else means exactly
        // the version's fields.
        let (mut alg, mut kid, mut kv, mut iv, mut ct, mut kc) = (None, None, None, None, None, None);
        let (mut sdr, mut sig) = (None, None);
        for (name, field) in map {
            let slot = match name.as_str() {
                "v" => continue,
                "alg" => &mut alg,
                "kid" => &mut kid,
                "kv" => &mut kv,
                "iv" => &mut iv,
                "ct" => &mut ct,
                "kc" => &mut kc,
                "sdr" if signed => &mut sdr,
                "sig" if signed => &mut sig,
                _ => return Err(fields_error),
            };
            *slot = Some(field);
        }
        let (Some(alg), Some(kid), Some(kv), Some(iv), Some(ct), Some(kc)) = (alg, kid, kv, iv, ct, kc)
        else {
            return Err(fields_error);
        };
        if signed && (sdr.is_none() || sig.is_none()) {
            return Err(fields_error);
        }
        let text = |field: &'a Value| field.as_str().ok_or(malformed("a field is not a string"));
        let alg = text(alg)?;
        if alg != ALG {
            return Err(CryptoError::UnsupportedAlgorithm { alg: alg.chars().take(32).collect() });
        }
        let kid = text(kid)?;
        validate_kid(kid)?;
        let kv = kv
            .as_u64()
            .and_then(|kv| u32::try_from(kv).ok())
            .ok_or(malformed("`kv` is not an integer in 0..=4294967295"))?;
        let iv = b64::decode_array::<IV_LEN>(text(iv)?, "iv", malformed("`iv` is not 12 bytes"))?;
        let kc = b64::decode_array::<COMMIT_LEN>(text(kc)?, "kc", malformed("`kc` is not 32 bytes"))?;
        let ct_text = text(ct)?;
        let ct_limit = (MAX_SEALED_BYTES + TAG_LEN).div_ceil(3) * 4;
        if ct_text.len() > ct_limit {
            return Err(CryptoError::Oversize {
                what: "envelope `ct`",
                size: ct_text.len(),
                limit: ct_limit,
            });
        }
        let ct = b64::decode(ct_text, "ct")?;
        if ct.len() < TAG_LEN {
            return Err(malformed("`ct` is shorter than the 16-byte tag"));
        }
        let signature = match (sdr, sig) {
            (Some(sdr), Some(sig)) => Some(SenderSignature {
                signer: SignerId(b64::decode_array::<SIGNER_ID_LEN>(
                    text(sdr)?,
                    "sdr",
                    malformed("`sdr` is not 16 bytes"),
                )?),
                sig: b64::decode_array::<SIGNATURE_LEN>(
                    text(sig)?,
                    "sig",
                    malformed("`sig` is not 64 bytes"),
                )?,
            }),
            _ => None,
        };
        Ok(Envelope { kid: kid.to_owned(), kv, iv, ct, kc, signature })
    }

    /// The AAD of this envelope for `scope` and `path` (v2's binds `sdr`).
    fn aad(&self, scope: &Scope, path: &JsonPointer) -> Vec<u8> {
        let signer = self.signature.as_ref().map(|s| &s.signer);
        aad::build(&header(&self.kid, self.kv, signer), scope, path)
    }

    /// True when `value` is shaped like an envelope (an object with the
    /// `v`, `alg`, `kid`, `kv`, `iv` and `ct` keys) and so must be opened,
    /// not passed through. Strict parsing happens in [`Envelope::from_json`].
    pub fn is_envelope(value: &Value) -> bool {
        // Length first: most objects in an event are small and are
        // dismissed without hashing a single key.
        value
            .as_object()
            .is_some_and(|map| map.len() >= 6 && FIELDS[..6].iter().all(|f| map.contains_key(*f)))
    }
}

/// Seals `value` under `key` (known as `kid`/`kv`) for `scope` and the
/// field at `path`, with a fresh nonce from `rng` (format v1, unsigned).
pub fn seal_value<R: TryCryptoRng + ?Sized>(
    key: &Key,
    kid: &str,
    kv: u32,
    scope: &Scope,
    path: &JsonPointer,
    value: &Value,
    rng: &mut R,
) -> Result<Envelope, CryptoError> {
    seal(key, &header(kid, kv, None), scope, path, value, rng).map(|(envelope, _)| envelope)
}

/// Seals like [`seal_value`], then signs as `signer` (format v2).
#[cfg(feature = "signatures")]
#[allow(clippy::too_many_arguments)]
pub fn seal_signed_value<R: TryCryptoRng + ?Sized>(
    key: &Key,
    kid: &str,
    kv: u32,
    scope: &Scope,
    path: &JsonPointer,
    value: &Value,
    signer: &super::EnvelopeSigner,
    rng: &mut R,
) -> Result<Envelope, CryptoError> {
    let id = signer.id();
    let (mut envelope, aad) = seal(key, &header(kid, kv, Some(&id)), scope, path, value, rng)?;
    let message = super::signature::signed_bytes(&aad, &envelope.iv, &envelope.ct, &envelope.kc);
    envelope.signature = Some(SenderSignature { signer: id, sig: signer.sign(&message) });
    Ok(envelope)
}

/// The AAD header of an envelope: v1, or v2 with its signer.
fn header<'a>(kid: &'a str, kv: u32, signer: Option<&'a SignerId>) -> aad::Header<'a> {
    let version = if signer.is_some() { SIGNED_VERSION } else { VERSION };
    aad::Header { version, alg: ALG, kid, kv, signer: signer.map(|id| id.0.as_slice()) }
}

/// Encrypts; the envelope (without a signature) and its AAD.
fn seal<R: TryCryptoRng + ?Sized>(
    key: &Key,
    header: &aad::Header<'_>,
    scope: &Scope,
    path: &JsonPointer,
    value: &Value,
    rng: &mut R,
) -> Result<(Envelope, Vec<u8>), CryptoError> {
    validate_kid(header.kid)?;
    let mut ct = plaintext::encode(value)?;
    let oversize = CryptoError::Oversize { what: "sealed value", size: ct.len(), limit: MAX_SEALED_BYTES };
    if ct.len() > MAX_SEALED_BYTES {
        return Err(oversize);
    }
    let mut iv = [0u8; IV_LEN];
    rng::fill(rng, &mut iv)?;
    let aad = aad::build(header, scope, path);
    // In place: the plaintext buffer becomes ciphertext || tag. AES-GCM only
    // fails for inputs beyond 2^36 bytes, far over MAX_SEALED_BYTES.
    key.cipher.encrypt_in_place(&Nonce::from(iv), &aad, &mut ct).map_err(|_| oversize)?;
    let kc = commit::commitment(key, &iv);
    Ok((Envelope { kid: header.kid.to_owned(), kv: header.kv, iv, ct, kc, signature: None }, aad))
}

/// Opens `envelope` with `key` for `scope` and the field at `path`: checks
/// the key commitment, then the GCM tag, then parses the JSON plaintext.
/// A signed envelope (v2) is refused with `UnknownSigner`: its sender can
/// only be checked where the signers are known ([`open_signed_value`]); so
/// is an unsigned one under a device-keys kid (`mls.…`: `SignatureRequired`).
pub fn open_value(
    key: &Key,
    scope: &Scope,
    path: &JsonPointer,
    envelope: &Envelope,
) -> Result<Value, CryptoError> {
    let (kid, kv) = (envelope.kid.clone(), envelope.kv);
    if envelope.signature.is_some() {
        return Err(CryptoError::UnknownSigner { kid, kv });
    }
    if envelope.kid.starts_with(super::signature::SIGNED_KID_PREFIX) {
        return Err(CryptoError::SignatureRequired { kid, kv });
    }
    decrypt(key, scope, path, envelope)
}

/// Opens `envelope` like [`open_value`], checking a signed one's sender
/// against `signers` before decrypting: an unknown signer is
/// `UnknownSigner`, a bad signature `SignatureInvalid`, an unsigned
/// envelope under a kid that requires signatures `SignatureRequired`.
/// Returns the value and who signed it.
#[cfg(feature = "signatures")]
pub fn open_signed_value(
    key: &Key,
    scope: &Scope,
    path: &JsonPointer,
    envelope: &Envelope,
    signers: &dyn super::SignerKeys,
) -> Result<(Value, Option<SignerId>), CryptoError> {
    let (kid, kv) = (envelope.kid.clone(), envelope.kv);
    let Some(signature) = &envelope.signature else {
        if signers.requires_signature(&envelope.kid) {
            return Err(CryptoError::SignatureRequired { kid, kv });
        }
        return decrypt(key, scope, path, envelope).map(|value| (value, None));
    };
    check_commitment(key, envelope)?;
    let public = signers
        .signer_key(&envelope.kid, envelope.kv, &signature.signer)
        .ok_or(CryptoError::UnknownSigner { kid: kid.clone(), kv })?;
    let aad = envelope.aad(scope, path);
    let message = super::signature::signed_bytes(&aad, &envelope.iv, &envelope.ct, &envelope.kc);
    if SignerId::of(&public) != signature.signer
        || !super::signature::verify(&public, &message, &signature.sig)
    {
        return Err(CryptoError::SignatureInvalid { kid, kv });
    }
    open_checked(key, &aad, envelope).map(|value| (value, Some(signature.signer)))
}

/// Commitment, then AES-GCM with the envelope's AAD, then JSON.
fn decrypt(key: &Key, scope: &Scope, path: &JsonPointer, envelope: &Envelope) -> Result<Value, CryptoError> {
    check_commitment(key, envelope)?;
    open_checked(key, &envelope.aad(scope, path), envelope)
}

/// The key commitment, checked before decryption: a ciphertext built to
/// open under two keys never reaches AES-GCM under the wrong one.
fn check_commitment(key: &Key, envelope: &Envelope) -> Result<(), CryptoError> {
    if commit::verify(key, &envelope.iv, &envelope.kc) {
        Ok(())
    } else {
        Err(CryptoError::CommitmentMismatch { kid: envelope.kid.clone(), kv: envelope.kv })
    }
}

/// AES-GCM with `aad`, then JSON (the commitment already checked).
fn open_checked(key: &Key, aad: &[u8], envelope: &Envelope) -> Result<Value, CryptoError> {
    let mut buffer = envelope.ct.clone();
    key.cipher
        .decrypt_in_place(&Nonce::from(envelope.iv), aad, &mut buffer)
        .map_err(|_| CryptoError::DecryptFailed)?;
    plaintext::decode(&buffer)
}

/// Checks a key id: 1 to 128 bytes.
pub(crate) fn validate_kid(kid: &str) -> Result<(), CryptoError> {
    if kid.is_empty() {
        return Err(CryptoError::InvalidKeyId { reason: "empty" });
    }
    if kid.len() > MAX_KID_LEN {
        return Err(CryptoError::InvalidKeyId { reason: "longer than 128 bytes" });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
