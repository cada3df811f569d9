//! Keys and sealing without a connection: key generation and HKDF
//! derivation (docs/keys.md), and sealing/opening event JSON
//! (docs/envelope.md) for apps that move events themselves.

use sealcast_core::client::sealed::{open_event, seal_event};
use sealcast_core::crypto::{DerivedKey, Key, KeyRing, Scope, derive_key as core_derive_key};
use serde_json::Value;

use crate::SealcastError;

pub(crate) fn key_from(bytes: &[u8]) -> Result<Key, SealcastError> {
    let bytes: &[u8; 32] = bytes.try_into().map_err(|_| SealcastError::invalid("a key is 32 bytes"))?;
    Ok(Key::from_bytes(bytes))
}

/// 32 random bytes from the OS.
#[uniffi::export]
pub fn generate_key() -> Result<Vec<u8>, SealcastError> {
    Ok(Key::generate()?.expose_secret().to_vec())
}

/// HKDF-SHA256 of `master` for `purpose` and `id` with `salt`.
#[uniffi::export]
pub fn derive_key(
    master: Vec<u8>,
    purpose: String,
    id: String,
    salt: Vec<u8>,
) -> Result<Vec<u8>, SealcastError> {
    Ok(core_derive_key(&key_from(&master)?, &purpose, &id, &salt).expose_secret().to_vec())
}

/// A document key and the non-secret hint stored with the document.
#[derive(uniffi::Record)]
pub struct DocumentKey {
    /// The key.
    pub key: Vec<u8>,
    /// The hint (salt), stored in plaintext by the server.
    pub key_hint: String,
}

/// A fresh key for a new session of `doc_id` (random salt as the hint).
#[uniffi::export]
pub fn new_document_key(master: Vec<u8>, doc_id: String) -> Result<DocumentKey, SealcastError> {
    let derived = DerivedKey::new_session(&key_from(&master)?, &doc_id)?;
    Ok(DocumentKey { key: derived.key.expose_secret().to_vec(), key_hint: derived.key_hint })
}

/// The key a document session's `key_hint` names.
#[uniffi::export]
pub fn document_key_from_hint(
    master: Vec<u8>,
    doc_id: String,
    key_hint: String,
) -> Result<DocumentKey, SealcastError> {
    let derived = DerivedKey::from_hint(&key_from(&master)?, &doc_id, &key_hint)?;
    Ok(DocumentKey { key: derived.key.expose_secret().to_vec(), key_hint: derived.key_hint })
}

/// Seals `paths` (JSON pointers) of the object `data_json` for `scope`
/// (`chat:ROOM:MSG`, `call:CALL:EVENT`, `custom:SCOPE:ID:EVENT`) with key
/// `kid` version `kv`, recording the scope in the event.
#[uniffi::export]
pub fn seal_json(
    data_json: String,
    paths: Vec<String>,
    kid: String,
    kv: u32,
    key: Vec<u8>,
    scope: String,
) -> Result<String, SealcastError> {
    let mut data: Value = serde_json::from_str(&data_json).map_err(SealcastError::invalid)?;
    let scope: Scope = scope.parse()?;
    let mut ring = KeyRing::single(&kid, kv, key_from(&key)?)?;
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    seal_event(&mut data, &paths, &mut ring, &kid, &scope)?;
    Ok(data.to_string())
}

/// An opened event.
#[derive(uniffi::Record)]
pub struct OpenedJson {
    /// The data with every sealed field opened.
    pub data_json: String,
    /// The scope its fields were sealed for, if any were.
    pub scope: Option<String>,
}

/// Opens every sealed field of `data_json` with key `kid` version `kv`.
#[uniffi::export]
pub fn open_json(data_json: String, kid: String, kv: u32, key: Vec<u8>) -> Result<OpenedJson, SealcastError> {
    let mut data: Value = serde_json::from_str(&data_json).map_err(SealcastError::invalid)?;
    let ring = KeyRing::single(&kid, kv, key_from(&key)?)?;
    let scope = open_event(&mut data, &ring)?;
    Ok(OpenedJson { data_json: data.to_string(), scope: scope.map(|s| s.to_string()) })
}

/// The Pusher channel authorization `app_key:hex(HMAC-SHA256(secret,
/// "socket_id:channel[:channel_data]"))`, for app servers written in
/// Kotlin, Swift or Python. Server side only: an app secret must never
/// ship inside a client.
#[uniffi::export]
pub fn sign_channel_auth(
    app_key: String,
    app_secret: String,
    socket_id: String,
    channel: String,
    channel_data: Option<String>,
) -> String {
    sealcast_core::protocol::auth::channel_auth(
        &app_key,
        &app_secret,
        &socket_id,
        &channel,
        channel_data.as_deref(),
    )
}
