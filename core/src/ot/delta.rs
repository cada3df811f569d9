//! [`Delta`]: a list of ops, and the OT algebra on it, following
//! quill-delta v5 line by line (see the module docs for the two deliberate
//! differences: surrogate pairs and embed retains).

use super::OtError;
use std::sync::Arc;

use super::attributes::{self, Attributes};
use super::iter::{Kind, OpIter};
use super::op::{Insert, Op};

/// A rich-text change, or (when it holds only inserts) a document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    ops: Vec<Op>,
}

impl Delta {
    /// An empty delta.
    pub fn new() -> Delta {
        Delta::default()
    }

    /// A delta built by pushing `ops` one by one: adjacent ops merge and an
    /// insert moves before a delete at the same position (quill's `push`).
    pub fn from_ops(ops: impl IntoIterator<Item = Op>) -> Delta {
        let mut delta = Delta::new();
        for op in ops {
            if !op.is_empty() {
                delta.push(op);
            }
        }
        delta
    }

    /// The ops.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Appends an insert of text (ignored when empty).
    pub fn insert_text(&mut self, text: &str, attributes: Option<Attributes>) -> &mut Delta {
        if text.is_empty() {
            return self;
        }
        self.push(Op::Insert { insert: Insert::text(text), attributes: shared(attributes) })
    }

    /// Appends an insert.
    pub fn insert(&mut self, insert: Insert, attributes: Option<Attributes>) -> &mut Delta {
        if insert.is_empty() {
            return self;
        }
        self.push(Op::Insert { insert, attributes: shared(attributes) })
    }

    /// Appends a retain (ignored when zero).
    pub fn retain(&mut self, n: usize, attributes: Option<Attributes>) -> &mut Delta {
        if n == 0 {
            return self;
        }
        self.push(Op::Retain { n, attributes: shared(attributes) })
    }

    /// Appends a delete (ignored when zero).
    pub fn delete(&mut self, n: usize) -> &mut Delta {
        if n == 0 {
            return self;
        }
        self.push(Op::Delete(n))
    }

    /// quill-delta's `push`: merge with the previous op when possible;
    /// inserts go before a trailing delete.
    pub fn push(&mut self, new_op: Op) -> &mut Delta {
        self.push_op(new_op);
        self
    }

    /// [`Delta::push`]; true when the op was appended as is at the end
    /// (quill-delta's "last op equals the op just pushed").
    fn push_op(&mut self, new_op: Op) -> bool {
        let mut index = self.ops.len();
        if let Some(last) = self.ops.last() {
            if let (Op::Delete(new), Op::Delete(old)) = (&new_op, last) {
                let merged = old.saturating_add(*new);
                self.ops[index - 1] = Op::Delete(merged);
                return false;
            }
            if matches!(last, Op::Delete(_)) && matches!(new_op, Op::Insert { .. }) {
                index -= 1;
                if index == 0 {
                    self.ops.insert(0, new_op);
                    return false;
                }
            }
            let last = &self.ops[index - 1];
            if new_op.attributes() == last.attributes() {
                match (&new_op, last) {
                    (
                        Op::Insert { insert: Insert::Text { text: new, .. }, attributes },
                        Op::Insert { insert: Insert::Text { text: old, .. }, .. },
                    ) => {
                        let text = format!("{old}{new}");
                        self.ops[index - 1] =
                            Op::Insert { insert: Insert::text(text), attributes: attributes.clone() };
                        return false;
                    }
                    (Op::Retain { n: new, attributes }, Op::Retain { n: old, .. }) => {
                        self.ops[index - 1] =
                            Op::Retain { n: old.saturating_add(*new), attributes: attributes.clone() };
                        return false;
                    }
                    _ => {}
                }
            }
        }
        if index == self.ops.len() {
            self.ops.push(new_op);
            true
        } else {
            self.ops.insert(index, new_op);
            false
        }
    }

    /// Drops a trailing plain retain (it changes nothing).
    pub fn chop(mut self) -> Delta {
        if let Some(Op::Retain { attributes: None, .. }) = self.ops.last() {
            self.ops.pop();
        }
        self
    }

    /// Total length of the ops.
    pub fn len(&self) -> usize {
        self.ops.iter().map(Op::len).fold(0, usize::saturating_add)
    }

    /// True when there are no ops.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Length of the document this delta applies to: what it retains and deletes.
    pub fn base_len(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| !matches!(op, Op::Insert { .. }))
            .map(Op::len)
            .fold(0, usize::saturating_add)
    }

    /// True when the delta is a document (only inserts).
    pub fn is_document(&self) -> bool {
        self.ops.iter().all(|op| matches!(op, Op::Insert { .. }))
    }

    /// The ops covering units `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> Result<Delta, OtError> {
        let mut ops = Vec::new();
        let mut iter = OpIter::new(&self.ops);
        let mut index = 0;
        while index < end && iter.has_next() {
            let next = if index < start {
                iter.next(Some(start - index))?
            } else {
                let op = iter.next(Some(end - index))?;
                ops.push(op.clone());
                op
            };
            index = index.saturating_add(next.len());
        }
        Ok(Delta { ops })
    }

    /// `self` then `other`, as one delta (quill-delta's `compose`).
    pub fn compose(&self, other: &Delta) -> Result<Delta, OtError> {
        let mut this_iter = OpIter::new(&self.ops);
        let mut other_iter = OpIter::new(&other.ops);
        let mut ops = Vec::new();
        // A leading plain retain in `other` passes our leading inserts through untouched.
        if let Some(Op::Retain { n: first_other, attributes: None }) = other_iter.peek() {
            let first_other = *first_other;
            let mut first_left = first_other;
            while this_iter.peek_kind() == Kind::Insert && this_iter.peek_len() <= first_left {
                first_left -= this_iter.peek_len();
                ops.push(this_iter.next(None)?);
            }
            if first_other - first_left > 0 {
                other_iter.next(Some(first_other - first_left))?;
            }
        }
        let mut delta = Delta { ops };
        while this_iter.has_next() || other_iter.has_next() {
            if other_iter.peek_kind() == Kind::Insert {
                delta.push(other_iter.next(None)?);
            } else if this_iter.peek_kind() == Kind::Delete {
                delta.push(this_iter.next(None)?);
            } else {
                let length = this_iter.peek_len().min(other_iter.peek_len());
                let this_op = this_iter.next(Some(length))?;
                let other_op = other_iter.next(Some(length))?;
                match (this_op, other_op) {
                    (this_op, Op::Retain { attributes: other_attributes, .. }) => {
                        let new_op = match this_op {
                            Op::Retain { attributes, .. } => Op::Retain {
                                n: length,
                                attributes: attributes::compose(
                                    attributes.as_ref(),
                                    other_attributes.as_ref(),
                                    true,
                                ),
                            },
                            Op::Insert { insert, attributes } => Op::Insert {
                                insert,
                                attributes: attributes::compose(
                                    attributes.as_ref(),
                                    other_attributes.as_ref(),
                                    false,
                                ),
                            },
                            // Deletes in `self` were consumed by the branch above.
                            Op::Delete(_) => continue,
                        };
                        let appended = delta.push_op(new_op);
                        // Optimization (and output shape) of quill-delta: if the
                        // rest of `other` is an endless retain, the rest of `self`
                        // follows verbatim.
                        if !other_iter.has_next() && appended {
                            let rest = this_iter.rest()?;
                            return Ok(delta.concat_ops(rest).chop());
                        }
                    }
                    (Op::Retain { .. }, delete @ Op::Delete(_)) => {
                        delta.push(delete);
                    }
                    // Insert then delete cancel out.
                    _ => {}
                }
            }
        }
        Ok(delta.chop())
    }

    /// `self` followed by `other`'s ops (the first one merged).
    pub fn concat(&self, other: &Delta) -> Delta {
        self.clone().concat_ops(other.ops.clone())
    }

    fn concat_ops(mut self, ops: Vec<Op>) -> Delta {
        let mut ops = ops.into_iter();
        if let Some(first) = ops.next() {
            self.push(first);
            self.ops.extend(ops);
        }
        self
    }

    /// The delta that undoes `self` applied to the document `base`.
    pub fn invert(&self, base: &Delta) -> Result<Delta, OtError> {
        if !base.is_document() {
            return Err(OtError::NotADocument);
        }
        if self.base_len() > base.len() {
            return Err(OtError::RetainPastEnd { needed: self.base_len(), length: base.len() });
        }
        let mut inverted = Delta::new();
        let mut base_index = 0usize;
        for op in &self.ops {
            match op {
                Op::Insert { insert, .. } => {
                    inverted.delete(insert.len());
                }
                Op::Retain { n, attributes: None } => {
                    inverted.retain(*n, None);
                    base_index += n;
                }
                Op::Delete(n) | Op::Retain { n, attributes: Some(_) } => {
                    let slice = base.slice(base_index, base_index + n)?;
                    for base_op in slice.ops {
                        match op {
                            Op::Delete(_) => {
                                inverted.push(base_op);
                            }
                            _ => {
                                let undo = attributes::invert(op.attributes(), base_op.attributes());
                                inverted.retain(base_op.len(), Some(undo));
                            }
                        }
                    }
                    base_index += n;
                }
            }
        }
        Ok(inverted.chop())
    }

    /// `other` rewritten to apply after `self` (quill-delta's
    /// `transform`). With `priority`, `self` is treated as having happened
    /// first: its inserts go before `other`'s at the same position.
    pub fn transform(&self, other: &Delta, priority: bool) -> Result<Delta, OtError> {
        let mut this_iter = OpIter::new(&self.ops);
        let mut other_iter = OpIter::new(&other.ops);
        let mut delta = Delta::new();
        while this_iter.has_next() || other_iter.has_next() {
            if this_iter.peek_kind() == Kind::Insert && (priority || other_iter.peek_kind() != Kind::Insert) {
                let (_, length) = this_iter.skip();
                delta.retain(length, None);
            } else if other_iter.peek_kind() == Kind::Insert {
                delta.push(other_iter.next(None)?);
            } else {
                let length = this_iter.peek_len().min(other_iter.peek_len());
                let this_op = this_iter.next(Some(length))?;
                let other_op = other_iter.next(Some(length))?;
                match (this_op, other_op) {
                    // Our delete makes their delete redundant or removes their retain.
                    (Op::Delete(_), _) => {}
                    (_, delete @ Op::Delete(_)) => {
                        delta.push(delete);
                    }
                    (this_op, other_op) => {
                        let attrs = attributes::transform(
                            this_op.shared_attributes(),
                            other_op.shared_attributes(),
                            priority,
                        );
                        if length > 0 {
                            delta.push(Op::Retain { n: length, attributes: attrs });
                        }
                    }
                }
            }
        }
        Ok(delta.chop())
    }

    /// A cursor position moved through `self` (quill-delta's
    /// `transformPosition`). With `priority`, an insert exactly at the
    /// cursor leaves the cursor before it.
    pub fn transform_position(&self, mut index: usize, priority: bool) -> usize {
        let mut iter = OpIter::new(&self.ops);
        let mut offset = 0usize;
        while iter.has_next() && offset <= index {
            let (kind, length) = iter.skip();
            if kind == Kind::Delete {
                index -= length.min(index - offset);
                continue;
            } else if kind == Kind::Insert && (offset < index || !priority) {
                index = index.saturating_add(length);
            }
            offset = offset.saturating_add(length);
        }
        index
    }

    /// Applies `change` to this document.
    pub fn apply(&self, change: &Delta) -> Result<Delta, OtError> {
        if !self.is_document() {
            return Err(OtError::NotADocument);
        }
        let needed = change.base_len();
        if needed > self.len() {
            return Err(OtError::RetainPastEnd { needed, length: self.len() });
        }
        self.compose(change)
    }
}

/// Builder attributes as ops hold them (empty means none).
fn shared(attributes: Option<Attributes>) -> Option<Arc<Attributes>> {
    attributes.filter(|a| !a.is_empty()).map(Arc::new)
}

#[cfg(test)]
mod tests;
