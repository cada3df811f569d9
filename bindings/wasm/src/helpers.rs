//! Keys, sealing and Delta operations without a connection, for apps and
//! key servers in JS. Keys are base64url text (docs/keys.md); deltas are
//! Quill delta JSON (`{"ops": [...]}`), the same semantics as the
//! `quill-delta` npm package; sealed events follow docs/envelope.md.

use sealcast_core::client::sealed::{open_event, seal_event};
use sealcast_core::crypto::{DerivedKey, Key, KeyRing, Scope, derive_key as core_derive_key};
use sealcast_core::ot::Delta;
use serde_json::json;
use wasm_bindgen::prelude::*;

use crate::error::{self, invalid, parse};

fn key(text: &str) -> Result<Key, JsError> {
    Key::from_base64url(text).map_err(error::crypto)
}

/// A random key (from `crypto.getRandomValues`), base64url.
#[wasm_bindgen(js_name = generateKey)]
pub fn generate_key() -> Result<String, JsError> {
    Ok(Key::generate().map_err(error::crypto)?.to_base64url())
}

/// HKDF-SHA256 of `master` for `purpose` and `id` with `salt` (UTF-8).
#[wasm_bindgen(js_name = deriveKey)]
pub fn derive_key(master: &str, purpose: &str, id: &str, salt: &str) -> Result<String, JsError> {
    Ok(core_derive_key(&key(master)?, purpose, id, salt.as_bytes()).to_base64url())
}

fn document_key(derived: DerivedKey) -> String {
    json!({"key": derived.key.to_base64url(), "keyHint": derived.key_hint}).to_string()
}

/// A fresh key for a new session of `doc_id`: `{"key", "keyHint"}` JSON
/// (the hint is stored in plaintext with the document).
#[wasm_bindgen(js_name = newDocumentKey)]
pub fn new_document_key(master: &str, doc_id: &str) -> Result<String, JsError> {
    Ok(document_key(DerivedKey::new_session(&key(master)?, doc_id).map_err(error::crypto)?))
}

/// The key a document session's `key_hint` names: `{"key", "keyHint"}`.
#[wasm_bindgen(js_name = documentKeyFromHint)]
pub fn document_key_from_hint(master: &str, doc_id: &str, key_hint: &str) -> Result<String, JsError> {
    Ok(document_key(DerivedKey::from_hint(&key(master)?, doc_id, key_hint).map_err(error::crypto)?))
}

/// Seals `paths` (JSON pointers) of the object `data_json` for `scope`
/// with key `kid` version `kv`; returns the event JSON.
#[wasm_bindgen(js_name = sealJson)]
pub fn seal_json(
    data_json: &str,
    paths: Vec<String>,
    kid: &str,
    kv: u32,
    key_text: &str,
    scope: &str,
) -> Result<String, JsError> {
    let mut data = parse(data_json)?;
    let scope: Scope = scope.parse().map_err(error::crypto)?;
    let mut ring = KeyRing::single(kid, kv, key(key_text)?).map_err(error::crypto)?;
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    seal_event(&mut data, &paths, &mut ring, kid, &scope).map_err(error::crypto)?;
    Ok(data.to_string())
}

/// Opens every sealed field of `data_json` with key `kid` version `kv`:
/// `{"data", "scope"}` JSON.
#[wasm_bindgen(js_name = openJson)]
pub fn open_json(data_json: &str, kid: &str, kv: u32, key_text: &str) -> Result<String, JsError> {
    let mut data = parse(data_json)?;
    let ring = KeyRing::single(kid, kv, key(key_text)?).map_err(error::crypto)?;
    let scope = open_event(&mut data, &ring).map_err(error::crypto)?;
    Ok(json!({"data": data, "scope": scope.map(|s| s.to_string())}).to_string())
}

/// The channel of document `doc_id`: `presence-doc-ID` with `presence`,
/// else `private-doc-ID`.
#[wasm_bindgen(js_name = documentChannel)]
pub fn document_channel(doc_id: &str, presence: bool) -> String {
    sealcast_core::protocol::doc::channel_for(doc_id, presence)
}

fn delta(text: &str) -> Result<Delta, JsError> {
    Delta::from_json_str(text).map_err(error::ot)
}

fn text(delta: &Delta) -> String {
    delta.to_json_string()
}

/// `a` then `b`, as one delta.
#[wasm_bindgen(js_name = deltaCompose)]
pub fn delta_compose(a: &str, b: &str) -> Result<String, JsError> {
    Ok(text(&delta(a)?.compose(&delta(b)?).map_err(error::ot)?))
}

/// `b` moved past the concurrent `a`; `priority`: `a` happened first.
#[wasm_bindgen(js_name = deltaTransform)]
pub fn delta_transform(a: &str, b: &str, priority: bool) -> Result<String, JsError> {
    Ok(text(&delta(a)?.transform(&delta(b)?, priority).map_err(error::ot)?))
}

/// A cursor index moved past `change`.
#[wasm_bindgen(js_name = deltaTransformPosition)]
pub fn delta_transform_position(change: &str, index: u32, priority: bool) -> Result<u32, JsError> {
    let moved = delta(change)?.transform_position(index as usize, priority);
    u32::try_from(moved).map_err(invalid)
}

/// `change` applied to `document` (a delta of inserts only).
#[wasm_bindgen(js_name = deltaApply)]
pub fn delta_apply(document: &str, change: &str) -> Result<String, JsError> {
    Ok(text(&delta(document)?.apply(&delta(change)?).map_err(error::ot)?))
}

/// The delta that undoes `change` on `base`.
#[wasm_bindgen(js_name = deltaInvert)]
pub fn delta_invert(change: &str, base: &str) -> Result<String, JsError> {
    Ok(text(&delta(change)?.invert(&delta(base)?).map_err(error::ot)?))
}
