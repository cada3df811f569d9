//! Quill Delta operations on JSON strings (`{"ops": [...]}` or `[...]`),
//! the same semantics as the `quill-delta` npm package.

use sealcast_core::ot::Delta;

use crate::SealcastError;

fn parse(json: &str) -> Result<Delta, SealcastError> {
    Ok(Delta::from_json_str(json)?)
}

fn text(delta: &Delta) -> String {
    delta.to_json_string()
}

/// `a` then `b`, as one delta.
#[uniffi::export]
pub fn delta_compose(a: String, b: String) -> Result<String, SealcastError> {
    Ok(text(&parse(&a)?.compose(&parse(&b)?)?))
}

/// `b` moved past the concurrent `a`; `priority`: `a` happened first.
#[uniffi::export]
pub fn delta_transform(a: String, b: String, priority: bool) -> Result<String, SealcastError> {
    Ok(text(&parse(&a)?.transform(&parse(&b)?, priority)?))
}

/// A cursor index moved past `delta`.
#[uniffi::export]
pub fn delta_transform_position(delta: String, index: u64, priority: bool) -> Result<u64, SealcastError> {
    let index = usize::try_from(index).map_err(SealcastError::invalid)?;
    Ok(parse(&delta)?.transform_position(index, priority) as u64)
}

/// `change` applied to `document` (a delta of inserts only).
#[uniffi::export]
pub fn delta_apply(document: String, change: String) -> Result<String, SealcastError> {
    Ok(text(&parse(&document)?.apply(&parse(&change)?)?))
}

/// The delta that undoes `change` on `base`.
#[uniffi::export]
pub fn delta_invert(change: String, base: String) -> Result<String, SealcastError> {
    Ok(text(&parse(&change)?.invert(&parse(&base)?)?))
}
