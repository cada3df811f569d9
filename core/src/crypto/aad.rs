//! The additional authenticated data (AAD) of an envelope.
//!
//! Every variable-length item is length-prefixed (4-byte big-endian length,
//! then the bytes), so no two different contexts encode to the same bytes
//! and no "canonical JSON" is needed. Layout (normative copy in
//! `docs/envelope.md`):
//!
//! ```text
//! lp("sealcast/envelope") || u8 version || lp(alg) || lp(kid) || u32be kv
//!   || lp(scope kind) || u8 field count || lp(field 1) … lp(field n)
//!   || lp(JSON pointer of the sealed field)
//!   [ || lp(sdr) ]        version 2 only: the signer id
//! ```

use super::{JsonPointer, Scope};

const AAD_LABEL: &[u8] = b"sealcast/envelope";

/// What the AAD takes from the envelope itself.
pub(crate) struct Header<'a> {
    /// The format version (1, or 2 with a signer).
    pub version: u8,
    pub alg: &'a str,
    pub kid: &'a str,
    pub kv: u32,
    /// A signed envelope's signer id (format v2); `None`: v1.
    pub signer: Option<&'a [u8]>,
}

/// Builds the AAD for one envelope.
pub(crate) fn build(header: &Header<'_>, scope: &Scope, path: &JsonPointer) -> Vec<u8> {
    let (version, alg, kid, kv) = (header.version, header.alg, header.kid, header.kv);
    let path = path.to_string();
    scope.with_fields(|fields| {
        let fields_len: usize = fields.iter().map(|f| f.len() + 4).sum();
        let mut out = Vec::with_capacity(64 + kid.len() + fields_len + path.len());
        push_prefixed(&mut out, AAD_LABEL);
        out.push(version);
        push_prefixed(&mut out, alg.as_bytes());
        push_prefixed(&mut out, kid.as_bytes());
        out.extend_from_slice(&kv.to_be_bytes());
        push_prefixed(&mut out, scope.kind().as_bytes());
        // Scope kinds have two or three fields, so the count fits a byte.
        out.push(u8::try_from(fields.len()).expect("scope kinds have at most 3 fields"));
        for field in fields {
            push_prefixed(&mut out, field.as_bytes());
        }
        push_prefixed(&mut out, path.as_bytes());
        if let Some(signer) = header.signer {
            push_prefixed(&mut out, signer);
        }
        out
    })
}

/// Appends `u32be(len) || bytes`.
pub(crate) fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Scope fields, kids and paths are bounded far below 4 GiB by validation;
    // saturating keeps this total even if a caller bypassed it.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_exact() {
        let scope = Scope::chat("r", "m").unwrap();
        let path: JsonPointer = "/body".parse().unwrap();
        let aad = build(&Header { version: 1, alg: "A256GCM", kid: "k", kv: 7, signer: None }, &scope, &path);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\0\0\0\x11sealcast/envelope");
        expected.push(1);
        expected.extend_from_slice(b"\0\0\0\x07A256GCM");
        expected.extend_from_slice(b"\0\0\0\x01k");
        expected.extend_from_slice(&[0, 0, 0, 7]);
        expected.extend_from_slice(b"\0\0\0\x04chat");
        expected.push(2);
        expected.extend_from_slice(b"\0\0\0\x01r\0\0\0\x01m");
        expected.extend_from_slice(b"\0\0\0\x05/body");
        assert_eq!(aad, expected);
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        // ("ab","c") and ("a","bc") must not collide.
        let path: JsonPointer = "".parse().unwrap();
        let a = build(
            &Header { version: 1, alg: "A256GCM", kid: "k", kv: 1, signer: None },
            &Scope::chat("ab", "c").unwrap(),
            &path,
        );
        let b = build(
            &Header { version: 1, alg: "A256GCM", kid: "k", kv: 1, signer: None },
            &Scope::chat("a", "bc").unwrap(),
            &path,
        );
        assert_ne!(a, b);
    }
}
