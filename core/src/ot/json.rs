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
        let wire: WireDelta = serde_json::from_str(text).map_err(|e| {
            // serde_json names both cases only in its message ("lone leading
            // surrogate in hex escape", "unexpected end of hex escape").
            if e.is_syntax() && e.to_string().contains("hex escape") && text.contains("\\u") {
                OtError::SplitSurrogatePair
            } else {
                OtError::Malformed("not JSON")
            }
        })?;
        let ops = match wire {
            WireDelta::Ops(ops) => ops,
            WireDelta::TooMany => return Err(OtError::Oversize("more than 100000 ops")),
            WireDelta::NotDelta => return Err(OtError::Malformed("expected {\"ops\": [...]}")),
        };
        let mut delta = Delta::new();
        for op in ops {
            delta.push(op.into_op()?);
        }
        Ok(delta)
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
                    seq.serialize_element(&OpOut(op))?;
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
struct OpOut<'a>(&'a Op);

impl Serialize for OpOut<'_> {
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
    let Value::Object(map) = value else { return Err(OtError::Malformed("an op must be a JSON object")) };
    let mut op = WireOp::default();
    for (key, value) in map {
        op.set(Member::of(&key), value);
    }
    op.into_op()
}

/// An op's members as parsed, before they are checked ([`WireOp::into_op`]).
#[derive(Debug, Default)]
struct WireOp {
    not_object: bool,
    insert: Option<Value>,
    retain: Option<Value>,
    delete: Option<Value>,
    attributes: Option<Value>,
    unknown: bool,
}

impl WireOp {
    /// A member (a repeated one replaces the first, as in a JSON object).
    fn set(&mut self, key: Member, value: Value) {
        match key {
            Member::Insert => self.insert = Some(value),
            Member::Retain => self.retain = Some(value),
            Member::Delete => self.delete = Some(value),
            Member::Attributes => self.attributes = Some(value),
            Member::Ops | Member::Other => self.unknown = true,
        }
    }

    fn into_op(self) -> Result<Op, OtError> {
        if self.not_object {
            return Err(OtError::Malformed("an op must be a JSON object"));
        }
        let attributes = match self.attributes {
            None | Some(Value::Null) => None,
            Some(Value::Object(attrs)) if attrs.is_empty() => None,
            Some(Value::Object(attrs)) => Some(std::sync::Arc::new(attrs)),
            Some(_) => return Err(OtError::InvalidAttributes("`attributes` must be a JSON object")),
        };
        let kinds = [&self.insert, &self.retain, &self.delete].iter().filter(|k| k.is_some()).count();
        if kinds != 1 {
            return Err(OtError::Malformed("an op has exactly one of insert, retain, delete"));
        }
        if self.unknown {
            return Err(OtError::Malformed("unknown member in op"));
        }
        if let Some(insert) = self.insert {
            let insert = match insert {
                Value::String(text) if text.is_empty() => return Err(OtError::InvalidLength("empty insert")),
                Value::String(text) => Insert::text(text),
                Value::Object(embed) if !embed.is_empty() => Insert::Embed(embed),
                _ => {
                    return Err(OtError::InvalidEmbed(
                        "an insert is a non-empty string or a non-empty object",
                    ));
                }
            };
            return Ok(Op::Insert { insert, attributes });
        }
        if let Some(retain) = self.retain {
            if retain.is_object() {
                return Err(OtError::InvalidEmbed("embed retains are not supported"));
            }
            return Ok(Op::Retain { n: length(&retain)?, attributes });
        }
        if attributes.is_some() {
            return Err(OtError::InvalidAttributes("a delete has no attributes"));
        }
        Ok(Op::Delete(length(self.delete.as_ref().unwrap_or(&Value::Null))?))
    }
}

/// A member name of a delta or an op, read without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Ops,
    Insert,
    Retain,
    Delete,
    Attributes,
    Other,
}

impl Member {
    fn of(name: &str) -> Member {
        match name {
            "ops" => Member::Ops,
            "insert" => Member::Insert,
            "retain" => Member::Retain,
            "delete" => Member::Delete,
            "attributes" => Member::Attributes,
            _ => Member::Other,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Member {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Member, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Member;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, name: &str) -> Result<Member, E> {
                Ok(Member::of(name))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// A visitor's answer to any JSON scalar (which is never what it wants):
/// `$answer`, for the caller to report in its own terms.
macro_rules! scalars_are {
    ($answer:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($answer)
        }
    };
}

/// A delta's JSON text parsed straight into [`WireOp`]s: no `Value` tree
/// for the ops themselves (their members still parse as values). What
/// does not have a delta's shape is recorded, not a parse error, so the
/// caller reports it as [`Delta::from_json`] does.
enum WireDelta {
    Ops(Vec<WireOp>),
    TooMany,
    NotDelta,
}

impl<'de> serde::Deserialize<'de> for WireDelta {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<WireDelta, D::Error> {
        deserializer.deserialize_any(DeltaVisitor)
    }
}

struct DeltaVisitor;

impl<'de> serde::de::Visitor<'de> for DeltaVisitor {
    type Value = WireDelta;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a delta")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<WireDelta, A::Error> {
        OpsVisitor.visit_seq(seq)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<WireDelta, A::Error> {
        let mut found = WireDelta::NotDelta;
        while let Some(key) = map.next_key::<Member>()? {
            if key == Member::Ops {
                found = map.next_value_seed(OpsSeed)?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    scalars_are!(WireDelta::NotDelta);
}

/// The value of `"ops"`: an array of ops, else not a delta.
struct OpsSeed;

impl<'de> serde::de::DeserializeSeed<'de> for OpsSeed {
    type Value = WireDelta;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<WireDelta, D::Error> {
        deserializer.deserialize_any(OpsVisitor)
    }
}

struct OpsVisitor;

impl<'de> serde::de::Visitor<'de> for OpsVisitor {
    type Value = WireDelta;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of ops")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<WireDelta, A::Error> {
        let mut ops = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(op) = seq.next_element::<WireOp>()? {
            if ops.len() == MAX_OPS {
                // Past the bound: the rest is read, not kept.
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                return Ok(WireDelta::TooMany);
            }
            ops.push(op);
        }
        Ok(WireDelta::Ops(ops))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<WireDelta, A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(WireDelta::NotDelta)
    }

    scalars_are!(WireDelta::NotDelta);
}

impl<'de> serde::Deserialize<'de> for WireOp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<WireOp, D::Error> {
        deserializer.deserialize_any(OpVisitor)
    }
}

struct OpVisitor;

impl<'de> serde::de::Visitor<'de> for OpVisitor {
    type Value = WireOp;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an op")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<WireOp, A::Error> {
        let mut op = WireOp::default();
        while let Some(key) = map.next_key::<Member>()? {
            op.set(key, map.next_value::<Value>()?);
        }
        Ok(op)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<WireOp, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(WireOp { not_object: true, ..WireOp::default() })
    }

    scalars_are!(WireOp { not_object: true, ..WireOp::default() });
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
    fn the_text_parser_refuses_what_the_value_parser_refuses_alike() {
        for text in [
            r#"[]"#,
            r#"{"ops":[]}"#,
            r#"{"ops":[], "extra": {"x": [1, 2]}}"#,
            r#"{"nope":[]}"#,
            r#"{"ops":{"insert":"a"}}"#,
            r#"{"ops":"text"}"#,
            r#"7"#,
            r#"null"#,
            r#"[5]"#,
            r#"[[{"insert":"a"}]]"#,
            r#"["insert"]"#,
            r#"[{}]"#,
            r#"[{"insert":"a","retain":1}]"#,
            r#"[{"insert":"a","bold":true}]"#,
            r#"[{"insert":"a","ops":1}]"#,
            r#"[{"insert":""}]"#,
            r#"[{"insert":{}}]"#,
            r#"[{"insert":3}]"#,
            r#"[{"insert":"a","insert":"b"}]"#,
            r#"[{"retain":{"image":"x"}}]"#,
            r#"[{"retain":0}]"#,
            r#"[{"retain":-1}]"#,
            r#"[{"retain":1.5}]"#,
            r#"[{"retain":9007199254740992}]"#,
            r#"[{"delete":2,"attributes":{"bold":true}}]"#,
            r#"[{"delete":"2"}]"#,
            r#"[{"insert":"a","attributes":[]}]"#,
            r#"[{"insert":"a","attributes":null},{"insert":"b","attributes":{}}]"#,
            r#"[{"insert":"escaped key"}]"#,
            r#"{"ops":[{"insert":"a"}],"ops":[{"insert":"b"}]}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(Delta::from_json_str(text), Delta::from_json(&value), "{text}");
        }
        let many = format!("[{}]", vec![r#"{"insert":"a"}"#; MAX_OPS + 1].join(","));
        assert_eq!(Delta::from_json_str(&many), Err(OtError::Oversize("more than 100000 ops")));
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
