//! End-to-end encryption of JSON fields.
//!
//! Owns keys ([`Key`], [`KeyRing`]), derivation ([`kdf`]), the envelope
//! format ([`Envelope`], specified byte for byte in `docs/envelope.md`),
//! scopes ([`Scope`]), sealing and opening fields of a JSON event by RFC 6901
//! pointer ([`seal_fields`], [`open_fields`]) and replay defence
//! ([`ReplayWindow`]). It leaves transport, key distribution and storage to
//! its callers: keys arrive from the app (a key provider), never from the
//! server.

mod aad;
pub(crate) mod b64;
pub(crate) mod commit;
mod envelope;
mod error;
mod fields;
pub mod kdf;
mod key;
mod plaintext;
mod pointer;
mod replay;
mod ring;
pub(crate) mod rng;
mod scope;
mod signature;

pub use envelope::{ALG, Envelope, MAX_SEALED_BYTES, SIGNED_VERSION, VERSION, open_value, seal_value};
#[cfg(feature = "signatures")]
pub use envelope::{open_signed_value, seal_signed_value};
pub use error::CryptoError;
pub use fields::{
    find_envelopes, open_call_json, open_chat_json, open_custom_json, open_fields, open_fields_with_replay,
    seal_call_json, seal_chat_json, seal_custom_json, seal_fields, seal_fields_with_rng,
};
#[cfg(feature = "signatures")]
pub use fields::{open_fields_signed, seal_fields_signed_with_rng};
pub use kdf::{DerivedKey, derive_document_key, derive_key};
pub(crate) use key::keyed_mac;
pub use key::{KEY_LEN, Key};
pub use pointer::JsonPointer;
pub use rand_core;
pub use replay::ReplayWindow;
pub use ring::{KeyRing, SEAL_HARD_LIMIT, SEAL_SOFT_LIMIT};
pub use rng::{ClientRng, OsRng, SeededRng};
pub use scope::Scope;
#[cfg(feature = "signatures")]
pub use signature::{EnvelopeSigner, SignerKeys};
pub use signature::{SIGNATURE_LEN, SIGNED_KID_PREFIX, SIGNER_ID_LEN, SenderSignature, SignerId};
