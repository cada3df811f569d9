//! The plaintext of an envelope: the compact JSON text of the sealed value.
//!
//! Openers accept any JSON text. Sealers here produce exactly serde_json's
//! compact output (the test vectors depend on it), with a fast path for the
//! commonest sealed value, a string (chat bodies, SDP): serde_json looks up
//! every byte in an escape table, which dominated sealing large strings; this
//! scans eight bytes at a time for the three byte classes JSON must escape.

use serde_json::Value;

use super::CryptoError;

/// Bytes reserved after the plaintext so the 16-byte GCM tag can be
/// appended in place without reallocating.
const TAG_ROOM: usize = 16;

/// The compact JSON text of `value`.
pub(crate) fn encode(value: &Value) -> Result<Vec<u8>, CryptoError> {
    match value {
        Value::String(text) => {
            let mut out = Vec::with_capacity(text.len() + 2 + TAG_ROOM);
            write_json_string(text, &mut out);
            Ok(out)
        }
        other => serde_json::to_vec(other).map_err(|_| CryptoError::InvalidPlaintext),
    }
}

/// Parses decrypted bytes back into a value.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, CryptoError> {
    serde_json::from_slice(bytes).map_err(|_| CryptoError::InvalidPlaintext)
}

/// Writes `text` as a JSON string literal, escaping exactly as serde_json
/// does: `"` `\` and the C0 controls (short forms for \b \t \n \f \r, else
/// `\u00xx` in lowercase hex); everything else, DEL and non-ASCII included,
/// verbatim.
fn write_json_string(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip whole 8-byte words that need no escaping.
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("slice of 8 bytes"));
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        if let Some(escape) = escape_for(byte) {
            out.extend_from_slice(&bytes[start..i]);
            match escape {
                b'u' => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(byte >> 4)]);
                    out.push(HEX[usize::from(byte & 0xF)]);
                }
                short => out.extend_from_slice(&[b'\\', short]),
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// True when any byte of `word` is `"`, `\` or below 0x20 (SWAR: the
/// classic "has zero byte" and "has byte less than n" tests).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    (has_zero(word ^ (ONES * u64::from(b'"'))) | has_zero(word ^ (ONES * u64::from(b'\\'))) | below_space)
        != 0
}

fn escape_for(byte: u8) -> Option<u8> {
    match byte {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        0x08 => Some(b'b'),
        0x09 => Some(b't'),
        0x0A => Some(b'n'),
        0x0C => Some(b'f'),
        0x0D => Some(b'r'),
        0x00..=0x1F => Some(b'u'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fast(text: &str) -> Vec<u8> {
        encode(&Value::String(text.to_owned())).unwrap()
    }

    #[test]
    fn matches_serde_json_on_every_byte_class() {
        let all_ascii: String = (0u8..=0x7F).map(char::from).collect();
        for text in [
            "",
            "plain",
            "quote\"back\\slash",
            "\u{0}\u{1f}\u{7f}",
            "héllo 👋",
            all_ascii.as_str(),
            &all_ascii.repeat(3),
        ] {
            assert_eq!(fast(text), serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn prop_matches_serde_json(text in any::<String>(), pad in 0usize..9) {
            // Shift the string against the 8-byte words.
            let text = format!("{}{text}", "a".repeat(pad));
            prop_assert_eq!(fast(&text), serde_json::to_vec(&text).unwrap());
        }

        #[test]
        fn prop_swar_agrees_with_bytewise(word in any::<u64>()) {
            let bytewise = word.to_le_bytes().iter().any(|&b| escape_for(b).is_some());
            prop_assert_eq!(needs_escape(word), bytewise);
        }
    }
}
