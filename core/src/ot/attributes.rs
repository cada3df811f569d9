//! Formatting attributes (`{"bold": true, "link": "…"}`) and quill-delta's
//! `AttributeMap` rules for combining them. `null` removes an attribute.

use std::sync::Arc;

use serde_json::{Map, Value};

/// An op's attributes: a JSON object, never empty (empty means "none").
pub type Attributes = Map<String, Value>;

/// Attributes as ops hold them: shared, so slicing and composing ops
/// copies a pointer, not a map.
pub(crate) type Shared = Arc<Attributes>;

/// `AttributeMap.compose(a, b, keepNull)`: `b` over `a`; nulls dropped
/// unless `keep_null` (composing onto a retain keeps "remove" markers).
pub(crate) fn compose(a: Option<&Shared>, b: Option<&Shared>, keep_null: bool) -> Option<Shared> {
    let has_null = |map: &Attributes| map.values().any(Value::is_null);
    match (a, b) {
        // quill copies every key of `a` (nulls included) when `b` is absent.
        (a, None) => a.cloned(),
        (None, Some(b)) if keep_null || !has_null(b) => Some(b.clone()),
        (a, Some(b)) => {
            let mut out = Attributes::new();
            for (key, value) in b.iter() {
                if keep_null || !value.is_null() {
                    out.insert(key.clone(), value.clone());
                }
            }
            for (key, value) in a.map(|a| a.iter()).into_iter().flatten() {
                if !b.contains_key(key) {
                    out.insert(key.clone(), value.clone());
                }
            }
            non_empty(out)
        }
    }
}

/// `AttributeMap.invert(attr, base)`: the attributes that undo `attr`
/// applied over `base`.
pub(crate) fn invert(attr: Option<&Attributes>, base: Option<&Attributes>) -> Attributes {
    let empty = Attributes::new();
    let attr = attr.unwrap_or(&empty);
    let base = base.unwrap_or(&empty);
    let mut out = Attributes::new();
    for (key, base_value) in base {
        if let Some(attr_value) = attr.get(key)
            && strictly_different(base_value, attr_value)
        {
            out.insert(key.clone(), base_value.clone());
        }
    }
    for key in attr.keys() {
        if !base.contains_key(key) {
            out.insert(key.clone(), Value::Null);
        }
    }
    out
}

/// `AttributeMap.transform(a, b, priority)`: `b`'s attributes as seen
/// after `a`; with priority, `a` wins on keys both set.
pub(crate) fn transform(a: Option<&Shared>, b: Option<&Shared>, priority: bool) -> Option<Shared> {
    let Some(a) = a else { return b.cloned() };
    let b = b?;
    if !priority {
        return Some(b.clone());
    }
    non_empty(
        b.iter().filter(|(key, _)| !a.contains_key(*key)).map(|(k, v)| (k.clone(), v.clone())).collect(),
    )
}

/// JavaScript's `!==` on attribute values parsed from JSON: primitives by
/// value; objects and arrays are never identical across two deltas.
fn strictly_different(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => true,
        (Value::Number(x), Value::Number(y)) => x.as_f64() != y.as_f64(),
        _ => a != b,
    }
}

fn non_empty(map: Attributes) -> Option<Shared> {
    (!map.is_empty()).then(|| Arc::new(map))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attrs(v: Value) -> Shared {
        Arc::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn compose_rules() {
        let a = attrs(json!({"bold": true, "color": "red"}));
        let b = attrs(json!({"italic": true, "color": null}));
        assert_eq!(compose(Some(&a), Some(&b), false), Some(attrs(json!({"italic": true, "bold": true}))));
        assert_eq!(
            compose(Some(&a), Some(&b), true),
            Some(attrs(json!({"italic": true, "color": null, "bold": true})))
        );
        assert_eq!(compose(None, Some(&attrs(json!({"x": null}))), false), None);
    }

    #[test]
    fn invert_rules() {
        let attr = attrs(json!({"bold": true, "italic": null}));
        let base = attrs(json!({"italic": true, "color": "red"}));
        assert_eq!(invert(Some(&*attr), Some(&*base)), *attrs(json!({"italic": true, "bold": null})));
    }

    #[test]
    fn transform_rules() {
        let a = attrs(json!({"bold": true}));
        let b = attrs(json!({"bold": false, "italic": true}));
        assert_eq!(transform(Some(&a), Some(&b), true), Some(attrs(json!({"italic": true}))));
        assert_eq!(transform(Some(&a), Some(&b), false), Some(b.clone()));
        assert_eq!(transform(None, Some(&b), true), Some(b));
        assert_eq!(transform(Some(&a), None, true), None);
    }
}
