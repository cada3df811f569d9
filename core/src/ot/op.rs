//! [`Op`] and [`Insert`], with UTF-16 lengths and slicing.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Attributes, OtError};

/// What an insert inserts.
#[derive(Debug, Clone, PartialEq)]
pub enum Insert {
    /// Text; `len` is its length in UTF-16 code units.
    Text {
        /// The text.
        text: String,
        /// UTF-16 length, cached.
        len: usize,
    },
    /// An embed (image, video, mention …): a JSON object, length 1.
    Embed(Map<String, Value>),
}

impl Insert {
    /// A text insert.
    pub fn text(text: impl Into<String>) -> Insert {
        let text = text.into();
        let len = utf16_len(&text);
        Insert::Text { text, len }
    }

    /// Length in UTF-16 code units (1 for an embed).
    pub fn len(&self) -> usize {
        match self {
            Insert::Text { len, .. } => *len,
            Insert::Embed(_) => 1,
        }
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One operation of a [`Delta`](super::Delta).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert text or an embed, with optional attributes.
    Insert {
        /// What to insert.
        insert: Insert,
        /// Its formatting (shared: slicing an op never copies the map).
        attributes: Option<Arc<Attributes>>,
    },
    /// Keep `n` units, optionally changing their attributes.
    Retain {
        /// Units kept.
        n: usize,
        /// Attribute changes (`null` removes).
        attributes: Option<Arc<Attributes>>,
    },
    /// Remove `n` units.
    Delete(usize),
}

impl Op {
    /// Length in UTF-16 code units.
    pub fn len(&self) -> usize {
        match self {
            Op::Insert { insert, .. } => insert.len(),
            Op::Retain { n, .. } => *n,
            Op::Delete(n) => *n,
        }
    }

    /// True for a zero-length op (never present in a normalized delta).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The op's attributes, shared.
    pub(crate) fn shared_attributes(&self) -> Option<&Arc<Attributes>> {
        match self {
            Op::Insert { attributes, .. } | Op::Retain { attributes, .. } => attributes.as_ref(),
            Op::Delete(_) => None,
        }
    }

    /// The op's attributes.
    pub fn attributes(&self) -> Option<&Attributes> {
        match self {
            Op::Insert { attributes, .. } | Op::Retain { attributes, .. } => attributes.as_deref(),
            Op::Delete(_) => None,
        }
    }
}

/// Length of `text` in UTF-16 code units.
pub(crate) fn utf16_len(text: &str) -> usize {
    // ASCII (the common case) is one unit per byte.
    if text.is_ascii() { text.len() } else { text.chars().map(char::len_utf16).sum() }
}

/// `text.substr(start, len)` in UTF-16 units; an error if either end falls
/// inside a surrogate pair.
pub(crate) fn utf16_slice(text: &str, start: usize, len: usize) -> Result<&str, OtError> {
    if text.is_ascii() {
        let end = start.saturating_add(len).min(text.len());
        return Ok(text.get(start.min(end)..end).unwrap_or(""));
    }
    let begin = utf16_to_byte(text, start)?;
    let end = utf16_to_byte(text, start.saturating_add(len))?;
    Ok(&text[begin..end])
}

/// Byte index of UTF-16 offset `units` (clamped to the end).
fn utf16_to_byte(text: &str, units: usize) -> Result<usize, OtError> {
    let mut seen = 0;
    for (byte, ch) in text.char_indices() {
        if seen == units {
            return Ok(byte);
        }
        seen += ch.len_utf16();
        if seen > units {
            return Err(OtError::SplitSurrogatePair);
        }
    }
    Ok(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_lengths_and_slices() {
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é😀"), 3);
        assert_eq!(utf16_slice("a😀b", 1, 2).unwrap(), "😀");
        assert_eq!(utf16_slice("a😀b", 3, 10).unwrap(), "b");
        assert_eq!(utf16_slice("a😀b", 2, 1), Err(OtError::SplitSurrogatePair));
        assert_eq!(utf16_slice("a😀b", 0, 2), Err(OtError::SplitSurrogatePair));
        assert_eq!(utf16_slice("hello", 1, 3).unwrap(), "ell");
        assert_eq!(utf16_slice("hello", 4, 9).unwrap(), "o");
    }
}
