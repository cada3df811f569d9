//! quill-delta's `OpIterator`: walks a delta's ops, handing out pieces of
//! a requested length. An exhausted iterator yields an endless retain.

use super::OtError;
use super::op::{Insert, Op, utf16_slice};

/// "Infinity" in quill-delta's iterator: the length of the endless retain.
pub(crate) const ENDLESS: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Insert,
    Retain,
    Delete,
}

pub(crate) struct OpIter<'a> {
    ops: &'a [Op],
    index: usize,
    offset: usize,
}

impl<'a> OpIter<'a> {
    pub(crate) fn new(ops: &'a [Op]) -> OpIter<'a> {
        OpIter { ops, index: 0, offset: 0 }
    }

    pub(crate) fn has_next(&self) -> bool {
        self.peek_len() < ENDLESS
    }

    pub(crate) fn peek(&self) -> Option<&'a Op> {
        self.ops.get(self.index)
    }

    pub(crate) fn peek_len(&self) -> usize {
        self.peek().map_or(ENDLESS, |op| op.len() - self.offset)
    }

    pub(crate) fn peek_kind(&self) -> Kind {
        match self.peek() {
            Some(Op::Insert { .. }) => Kind::Insert,
            Some(Op::Delete(_)) => Kind::Delete,
            Some(Op::Retain { .. }) | None => Kind::Retain,
        }
    }

    /// The next piece of at most `length` units (`None`: the rest of the
    /// current op).
    pub(crate) fn next(&mut self, length: Option<usize>) -> Result<Op, OtError> {
        let Some(op) = self.ops.get(self.index) else {
            return Ok(Op::Retain { n: ENDLESS, attributes: None });
        };
        let offset = self.offset;
        let length = self.advance(op, length);
        Ok(match op {
            Op::Delete(_) => Op::Delete(length),
            Op::Retain { attributes, .. } => Op::Retain { n: length, attributes: attributes.clone() },
            Op::Insert { insert: Insert::Text { text, len }, attributes } => {
                // A whole op is cloned; a piece is cut, its UTF-16 length already known.
                let text = if offset == 0 && length == *len {
                    text.clone()
                } else {
                    utf16_slice(text, offset, length)?.to_owned()
                };
                Op::Insert { insert: Insert::Text { text, len: length }, attributes: attributes.clone() }
            }
            Op::Insert { insert, attributes } => {
                Op::Insert { insert: insert.clone(), attributes: attributes.clone() }
            }
        })
    }

    /// Skips the rest of the current op; returns its kind and length.
    pub(crate) fn skip(&mut self) -> (Kind, usize) {
        let kind = self.peek_kind();
        let length = match self.ops.get(self.index) {
            Some(op) => self.advance(op, None),
            None => ENDLESS,
        };
        (kind, length)
    }

    /// The remaining ops, the current one cut at the offset.
    pub(crate) fn rest(&mut self) -> Result<Vec<Op>, OtError> {
        if !self.has_next() {
            return Ok(Vec::new());
        }
        if self.offset == 0 {
            return Ok(self.ops[self.index..].to_vec());
        }
        let (index, offset) = (self.index, self.offset);
        let first = self.next(None)?;
        let mut rest = vec![first];
        rest.extend_from_slice(&self.ops[self.index..]);
        self.index = index;
        self.offset = offset;
        Ok(rest)
    }

    /// Moves past `length` units of `op` (all that is left when `None`,
    /// zero, or more than remains), returning how many were taken.
    fn advance(&mut self, op: &Op, length: Option<usize>) -> usize {
        let remaining = op.len() - self.offset;
        match length {
            Some(length) if length > 0 && length < remaining => {
                self.offset += length;
                length
            }
            _ => {
                self.index += 1;
                self.offset = 0;
                remaining
            }
        }
    }
}
