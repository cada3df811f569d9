//! The one error type of the crypto layer.

/// Everything that can go wrong sealing or opening an envelope, handling a
/// key or resolving a JSON path.
///
/// Messages help the caller find the cause but never contain key bytes or
/// plaintext. Each variant says who caused it: the *peer* (whoever produced
/// the envelope or event), the *caller* (API misuse or bad configuration) or
/// the *environment*. [`CryptoError::code`] gives a stable snake_case name for
/// tests, logs and foreign bindings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A base64url field (`iv`, `ct`, `kc` or a key) is not canonical
    /// unpadded base64url (caused by: peer, or caller for keys).
    #[error("field `{field}` is not valid unpadded base64url")]
    InvalidBase64 {
        /// Which field failed to decode.
        field: &'static str,
    },
    /// The envelope JSON lacks a field, has one of the wrong type or length,
    /// or carries an unexpected one (caused by: peer).
    #[error("malformed envelope: {reason}")]
    MalformedEnvelope {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The envelope format version is not one this build understands
    /// (caused by: peer, or a newer sender).
    #[error("unsupported envelope version {version} (this build reads versions 1 and 2)")]
    UnsupportedVersion {
        /// The version found.
        version: u64,
    },
    /// The envelope names an algorithm other than `A256GCM` (caused by: peer).
    #[error("unsupported envelope algorithm {alg:?} (expected \"A256GCM\")")]
    UnsupportedAlgorithm {
        /// The algorithm found, truncated to 32 characters.
        alg: String,
    },
    /// No key with this id and version is in the ring (caused by: peer, or a
    /// key not fetched yet: retry after asking the key provider).
    #[error("no key `{kid}` version {kv} in the key ring")]
    UnknownKey {
        /// Key id.
        kid: String,
        /// Key version.
        kv: u32,
    },
    /// The envelope's key commitment does not match the key held under its
    /// kid/kv: it was sealed under a different key (caused by: peer, or two
    /// parties holding different keys under the same kid/kv).
    #[error(
        "key commitment mismatch for key `{kid}` version {kv}: envelope was sealed under a different key"
    )]
    CommitmentMismatch {
        /// Key id.
        kid: String,
        /// Key version.
        kv: u32,
    },
    /// A signed envelope (v2) whose signer is not one who may seal under
    /// its kid/kv (not a member of that group epoch), or opened where no
    /// signers are known (caused by: peer, or a member list not up to date).
    #[error("envelope signed by a sender unknown for key `{kid}` version {kv}")]
    UnknownSigner {
        /// Key id.
        kid: String,
        /// Key version.
        kv: u32,
    },
    /// A signed envelope whose signature does not verify: someone wrote as
    /// another member (caused by: peer).
    #[error("envelope sender signature does not verify (key `{kid}` version {kv})")]
    SignatureInvalid {
        /// Key id.
        kid: String,
        /// Key version.
        kv: u32,
    },
    /// An unsigned envelope under a key whose envelopes must be signed
    /// (caused by: peer stripping the signature, or an old sender).
    #[error("envelope under key `{kid}` version {kv} must carry a sender signature")]
    SignatureRequired {
        /// Key id.
        kid: String,
        /// Key version.
        kv: u32,
    },
    /// The AES-GCM tag did not verify: the ciphertext, nonce, kid/kv, scope or
    /// field path differ from what was sealed. Scope and path are
    /// authenticated, not transmitted, so a wrong scope looks exactly like
    /// tampering (caused by: peer, or caller passing the wrong scope).
    #[error("envelope could not be decrypted: tampered, or opened with the wrong scope or field path")]
    DecryptFailed,
    /// The envelope decrypted but its plaintext is not JSON (caused by: peer,
    /// a sender that sealed something other than a JSON value).
    #[error("decrypted field is not valid JSON")]
    InvalidPlaintext,
    /// The same envelope was already opened in this scope (caused by: peer
    /// replaying a message).
    #[error("replayed envelope: already seen in this scope")]
    Replayed,
    /// A plaintext or envelope exceeds the size limit (caused by: caller when
    /// sealing, peer when opening).
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    Oversize {
        /// What was too big.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Key material is malformed: wrong length or encoding (caused by: caller).
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key id is empty, too long or otherwise unusable (caused by: caller or peer).
    #[error("invalid key id: {reason}")]
    InvalidKeyId {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A different key is already registered under this kid/kv; key versions
    /// are immutable (caused by: caller).
    #[error("key `{kid}` version {kv} already holds a different key")]
    KeyConflict {
        /// Key id.
        kid: String,
        /// Key version.
        kv: u32,
    },
    /// The key has sealed as many envelopes as random 96-bit nonces safely
    /// allow; rotate it (caused by: caller, see `docs/envelope.md`).
    #[error("key `{kid}` version {kv} reached its usage limit of {limit} envelopes: rotate it")]
    KeyExhausted {
        /// Key id.
        kid: String,
        /// Key version.
        kv: u32,
        /// The hard limit.
        limit: u64,
    },
    /// A scope is malformed: an empty or oversize field, or an unparseable
    /// scope string (caused by: caller).
    #[error("invalid scope: {reason}")]
    InvalidScope {
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON pointer is not valid RFC 6901 syntax (caused by: caller).
    #[error("invalid JSON pointer {pointer:?}: {reason}")]
    InvalidPointer {
        /// The pointer as given.
        pointer: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A JSON pointer names no value in the event (caused by: caller).
    #[error("no value at JSON pointer {pointer:?}")]
    PathNotFound {
        /// The pointer.
        pointer: String,
    },
    /// Two paths to seal are equal or one contains the other (caused by: caller).
    #[error("JSON pointers {outer:?} and {inner:?} overlap")]
    OverlappingPaths {
        /// The containing pointer.
        outer: String,
        /// The contained (or equal) pointer.
        inner: String,
    },
    /// A field the caller requires to be sealed arrived in plaintext (caused
    /// by: peer stripping or never applying encryption).
    #[error("field {pointer:?} was expected to be sealed but is plaintext")]
    NotSealed {
        /// The pointer.
        pointer: String,
    },
    /// Opening one field of an event failed; nothing in the event was changed.
    #[error("field {pointer:?}: {source}")]
    Field {
        /// Where the envelope sits.
        pointer: String,
        /// Why it failed.
        #[source]
        source: Box<CryptoError>,
    },
    /// The operating system's random number generator failed (caused by: environment).
    #[error("secure randomness unavailable")]
    RandomnessUnavailable,
}

impl CryptoError {
    /// A stable snake_case name for the variant, for tests, logs and bindings.
    /// For [`CryptoError::Field`] it is the code of the underlying error.
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::InvalidBase64 { .. } => "invalid_base64",
            CryptoError::MalformedEnvelope { .. } => "malformed_envelope",
            CryptoError::UnsupportedVersion { .. } => "unsupported_version",
            CryptoError::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            CryptoError::UnknownKey { .. } => "unknown_key",
            CryptoError::CommitmentMismatch { .. } => "commitment_mismatch",
            CryptoError::DecryptFailed => "decrypt_failed",
            CryptoError::InvalidPlaintext => "invalid_plaintext",
            CryptoError::Replayed => "replayed",
            CryptoError::Oversize { .. } => "oversize",
            CryptoError::InvalidKey { .. } => "invalid_key",
            CryptoError::InvalidKeyId { .. } => "invalid_key_id",
            CryptoError::KeyConflict { .. } => "key_conflict",
            CryptoError::KeyExhausted { .. } => "key_exhausted",
            CryptoError::InvalidScope { .. } => "invalid_scope",
            CryptoError::InvalidPointer { .. } => "invalid_pointer",
            CryptoError::PathNotFound { .. } => "path_not_found",
            CryptoError::OverlappingPaths { .. } => "overlapping_paths",
            CryptoError::NotSealed { .. } => "not_sealed",
            CryptoError::Field { source, .. } => source.code(),
            CryptoError::RandomnessUnavailable => "randomness_unavailable",
            CryptoError::UnknownSigner { .. } => "unknown_signer",
            CryptoError::SignatureInvalid { .. } => "signature_invalid",
            CryptoError::SignatureRequired { .. } => "signature_required",
        }
    }

    /// Strips a [`CryptoError::Field`] wrapper, giving the underlying error.
    pub fn root(&self) -> &CryptoError {
        match self {
            CryptoError::Field { source, .. } => source.root(),
            other => other,
        }
    }
}
