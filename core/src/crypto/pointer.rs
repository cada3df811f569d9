//! [`JsonPointer`]: RFC 6901 paths to the fields that get sealed.
//!
//! Parsing is strict (a `~` must be followed by `0` or `1`, array indices
//! have no leading zeros, `-` is not an index) so that every location has
//! exactly one pointer text; that text is bound into the AAD, so the sealer
//! and the opener must agree on it byte for byte.

use core::fmt;
use core::str::FromStr;

use serde_json::Value;

use super::CryptoError;

/// Longest pointer text accepted, in bytes.
pub const MAX_POINTER_LEN: usize = 1024;

/// A parsed RFC 6901 JSON pointer. The empty pointer `""` is the whole value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct JsonPointer {
    segments: Vec<String>,
}

impl JsonPointer {
    /// The pointer to the whole value.
    pub fn root() -> JsonPointer {
        JsonPointer::default()
    }

    /// The pointer one level down, at object key or array index `segment`.
    pub fn child(&self, segment: impl Into<String>) -> JsonPointer {
        let mut segments = self.segments.clone();
        segments.push(segment.into());
        JsonPointer { segments }
    }

    /// True when `self` equals `other` or is an ancestor of it.
    pub fn contains(&self, other: &JsonPointer) -> bool {
        other.segments.starts_with(&self.segments)
    }

    /// The value at this pointer, if any.
    pub fn resolve<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(value, |node, segment| match node {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => items.get(array_index(segment)?),
            _ => None,
        })
    }

    /// The value at this pointer, mutably, if any.
    pub fn resolve_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        self.segments.iter().try_fold(value, |node, segment| match node {
            Value::Object(map) => map.get_mut(segment),
            Value::Array(items) => items.get_mut(array_index(segment)?),
            _ => None,
        })
    }
}

impl FromStr for JsonPointer {
    type Err = CryptoError;

    fn from_str(text: &str) -> Result<JsonPointer, CryptoError> {
        let invalid =
            |reason| CryptoError::InvalidPointer { pointer: text.chars().take(64).collect(), reason };
        if text.len() > MAX_POINTER_LEN {
            return Err(invalid("longer than 1024 bytes"));
        }
        if text.is_empty() {
            return Ok(JsonPointer::root());
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(invalid("must be empty or start with '/'"));
        };
        let segments = rest.split('/').map(unescape).collect::<Option<Vec<_>>>();
        segments
            .map(|segments| JsonPointer { segments })
            .ok_or_else(|| invalid("'~' must be followed by '0' or '1'"))
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            f.write_str("/")?;
            // Escape without allocating: split at each '~' or '/'.
            let mut rest = segment.as_str();
            while let Some(at) = rest.find(['~', '/']) {
                f.write_str(&rest[..at])?;
                f.write_str(if rest.as_bytes()[at] == b'~' { "~0" } else { "~1" })?;
                rest = &rest[at + 1..];
            }
            f.write_str(rest)?;
        }
        Ok(())
    }
}

fn unescape(segment: &str) -> Option<String> {
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An RFC 6901 array index: `0` or digits without a leading zero.
fn array_index(segment: &str) -> Option<usize> {
    let canonical = !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    if canonical { segment.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn escapes_round_trip() {
        for text in ["", "/a", "/a~1b/c~0d", "/", "//x", "/0/1"] {
            assert_eq!(text.parse::<JsonPointer>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_non_canonical() {
        for bad in ["a", "/a~2", "/a~", "~1"] {
            assert!(bad.parse::<JsonPointer>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn resolves_like_rfc6901() {
        let doc = json!({"a/b": 1, "m~n": 2, "arr": [10, 20], "": 3});
        let at = |p: &str| p.parse::<JsonPointer>().unwrap().resolve(&doc).cloned();
        assert_eq!(at("/a~1b"), Some(json!(1)));
        assert_eq!(at("/m~0n"), Some(json!(2)));
        assert_eq!(at("/arr/1"), Some(json!(20)));
        assert_eq!(at("/"), Some(json!(3)));
        assert_eq!(at("/arr/01"), None);
        assert_eq!(at("/arr/-"), None);
        assert_eq!(at("/arr/2"), None);
        assert_eq!(at(""), Some(doc.clone()));
    }

    #[test]
    fn containment() {
        let p = |s: &str| s.parse::<JsonPointer>().unwrap();
        assert!(p("/a").contains(&p("/a/b")));
        assert!(p("").contains(&p("/a")));
        assert!(p("/a").contains(&p("/a")));
        assert!(!p("/a").contains(&p("/ab")));
    }
}
