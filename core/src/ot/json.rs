//! The Delta JSON form: `{"ops":[{"insert":"text","attributes":{…}},
//! {"insert":{"image":"…"}},{"retain":3,"attributes":{"bold":null}},{"delete":2}]}`.
//!
//! Parsing is strict (typed errors, never a panic) and normalizes the way
//! quill-delta's builder does: ops are pushed one by one, so adjacent ops
//! merge and empty attribute objects disappear.
//!
//! From and to JSON text (what the bindings cross), the parsed value's
//! strings and maps are moved into the ops, and ops are written straight
//! to text: no copy of the document's text or attributes on either side
//! (docs/benchmarks.md, "Browser client").

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value, json};

use super::{Delta, Insert, Op, OtError};

/// Most ops accepted in one delta.
pub const MAX_OPS: usize = 100_000;

/// Largest op length accepted (JavaScript's largest safe integer).
const MAX_LENGTH: u64 = (1 << 53) - 1;

impl Delta {
    /// Parses `{"ops": [...]}` or a bare `[...]` of ops.
    pub fn from_json(value: &Value) -> Result<Delta, OtError> {
        Delta::from_json_value(value.clone())
    }

    /// [`Delta::from_json`], taking the value (its strings and maps become
    /// the ops' without a copy).
    pub fn from_json_value(value: Value) -> Result<Delta, OtError> {
        let ops = match value {
            Value::Array(ops) => ops,
            Value::Object(mut map) => match map.remove("ops") {
                Some(Value::Array(ops)) => ops,
                _ => return Err(OtError::Malformed("expected {\"ops\": [...]}")),
            },
            _ => return Err(OtError::Malformed("expected {\"ops\": [...]}")),
        };
        if ops.len() > MAX_OPS {
            return Err(OtError::Oversize("more than 100000 ops"));
        }
        let mut delta = Delta::new();
        for op in ops {
            delta.push(parse_op(op)?);
        }
        Ok(delta)
    }

    /// Parses the JSON text of a delta. Half of an emoji's UTF-16 pair
    /// (`"\ud83d"`, which `JSON.stringify` writes for a string cut inside a
    /// pair) is [`OtError::SplitSurrogatePair`], not just "not JSON".
    pub fn from_json_str(text: &str) -> Result<Delta, OtError> {
        let value = serde_json::from_str(text).map_err(|e| {
            // serde_json names both cases only in its message ("lone leading
            // surrogate in hex escape", "unexpected end of hex escape").
            if e.is_syntax() && e.to_string().contains("hex escape") && text.contains("\\u") {
                OtError::SplitSurrogatePair
            } else {
                OtError::Malformed("not JSON")
            }
        })?;
        Delta::from_json_value(value)
    }

    /// The JSON form `{"ops": [...]}`.
    pub fn to_json(&self) -> Value {
        let ops: Vec<Value> = self.ops().iter().map(op_to_json).collect();
        json!({ "ops": ops })
    }

    /// The JSON text of [`Delta::to_json`], written without building it.
    pub fn to_json_string(&self) -> String {
        // Serializing strings, numbers and string-keyed maps cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| self.to_json().to_string())
    }
}

/// The JSON form, as [`Delta::to_json`] builds it (the same text).
impl Serialize for Delta {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Ops<'a>(&'a [Op]);
        impl Serialize for Ops<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for op in self.0 {
                    seq.serialize_element(&WireOp(op))?;
                }
                seq.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("ops", &Ops(self.ops()))?;
        map.end()
    }
}

/// One op as `op_to_json` writes it: its kind first, then `attributes`.
struct WireOp<'a>(&'a Op);

impl Serialize for WireOp<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let op = self.0;
        let attributes = op.attributes();
        let mut map = serializer.serialize_map(Some(1 + usize::from(attributes.is_some())))?;
        match op {
            Op::Insert { insert: Insert::Text { text, .. }, .. } => map.serialize_entry("insert", text)?,
            Op::Insert { insert: Insert::Embed(embed), .. } => map.serialize_entry("insert", embed)?,
            Op::Retain { n, .. } => map.serialize_entry("retain", n)?,
            Op::Delete(n) => map.serialize_entry("delete", n)?,
        }
        if let Some(attributes) = attributes {
            map.serialize_entry("attributes", attributes)?;
        }
        map.end()
    }
}

fn parse_op(value: Value) -> Result<Op, OtError> {
    let Value::Object(mut map) = value else { return Err(OtError::Malformed("an op must be a JSON object")) };
    let attributes = match map.remove("attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(attrs)) if attrs.is_empty() => None,
        Some(Value::Object(attrs)) => Some(std::sync::Arc::new(attrs)),
        Some(_) => return Err(OtError::InvalidAttributes("`attributes` must be a JSON object")),
    };
    let kinds = ["insert", "retain", "delete"].iter().filter(|k| map.contains_key(**k)).count();
    if kinds != 1 {
        return Err(OtError::Malformed("an op has exactly one of insert, retain, delete"));
    }
    if map.len() != 1 {
        return Err(OtError::Malformed("unknown member in op"));
    }
    if let Some(insert) = map.remove("insert") {
        let insert = match insert {
            Value::String(text) if text.is_empty() => return Err(OtError::InvalidLength("empty insert")),
            Value::String(text) => Insert::text(text),
            Value::Object(embed) if !embed.is_empty() => Insert::Embed(embed),
            _ => return Err(OtError::InvalidEmbed("an insert is a non-empty string or a non-empty object")),
        };
        return Ok(Op::Insert { insert, attributes });
    }
    if let Some(retain) = map.get("retain") {
        if retain.is_object() {
            return Err(OtError::InvalidEmbed("embed retains are not supported"));
        }
        return Ok(Op::Retain { n: length(retain)?, attributes });
    }
    if attributes.is_some() {
        return Err(OtError::InvalidAttributes("a delete has no attributes"));
    }
    Ok(Op::Delete(length(map.get("delete").unwrap_or(&Value::Null))?))
}

fn length(value: &Value) -> Result<usize, OtError> {
    match value.as_u64() {
        Some(0) | None => Err(OtError::InvalidLength("retain and delete take a positive integer")),
        Some(n) if n > MAX_LENGTH => Err(OtError::Oversize("length over 2^53 - 1")),
        Some(n) => usize::try_from(n).map_err(|_| OtError::Oversize("length does not fit this platform")),
    }
}

fn op_to_json(op: &Op) -> Value {
    let mut map = Map::new();
    match op {
        Op::Insert { insert: Insert::Text { text, .. }, .. } => {
            map.insert("insert".into(), Value::String(text.clone()));
        }
        Op::Insert { insert: Insert::Embed(embed), .. } => {
            map.insert("insert".into(), Value::Object(embed.clone()));
        }
        Op::Retain { n, .. } => {
            map.insert("retain".into(), json!(n));
        }
        Op::Delete(n) => {
            map.insert("delete".into(), json!(n));
        }
    }
    if let Some(attributes) = op.attributes() {
        map.insert("attributes".into(), Value::Object(attributes.clone()));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_matches_the_values_text_with_embeds_escapes_and_nested_attributes() {
        let value = json!({"ops": [
            {"insert": "a \"quoted\"\n\u{1}\t😀 é", "attributes": {"link": "https://x/?a=1&b=<2>", "n": 1.5}},
            {"insert": {"image": "data:…", "alt": {"nested": [1, null, true]}}},
            {"retain": 3, "attributes": {"bold": null, "color": "#fff"}},
            {"delete": 9007199254740991u64},
        ]});
        let delta = Delta::from_json(&value).unwrap();
        assert_eq!(delta.to_json(), value);
        assert_eq!(delta.to_json_string(), value.to_string());
    }

    #[test]
    fn half_of_a_utf16_pair_is_named_as_such() {
        // What JSON.stringify writes for inserts cut inside 🇫🇷 / 👋.
        for text in [
            r#"{"ops":[{"retain":1},{"insert":"\uddeb\ud83c"}]}"#,
            r#"{"ops":[{"insert":"a\ud83d"}]}"#,
            r#"{"ops":[{"insert":"\udc4bb"}]}"#,
        ] {
            assert_eq!(Delta::from_json_str(text), Err(OtError::SplitSurrogatePair), "{text}");
        }
        assert_eq!(
            Delta::from_json_str(r#"{"ops":[{"insert":"\ud83d\udc4b"}]}"#).map(|d| d.ops().len()),
            Ok(1)
        );
        assert_eq!(
            Delta::from_json_str(r#"{"ops":[{"insert":"\uZZZZ"}]}"#),
            Err(OtError::Malformed("not JSON"))
        );
        assert_eq!(Delta::from_json_str("{"), Err(OtError::Malformed("not JSON")));
    }
}
