//! [`OtError`]: why an op or delta was refused.

/// Errors from parsing or combining deltas. Every one is caused by the
/// peer or caller that supplied the delta; none leaves partial output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtError {
    /// The JSON is not `{"ops": [...]}` (or a bare array) of op objects.
    #[error("malformed delta: {0}")]
    Malformed(&'static str),
    /// A retain or delete that is not a positive integer, or an empty insert.
    #[error("invalid op length: {0}")]
    InvalidLength(&'static str),
    /// `attributes` that is not a JSON object, or attributes on a delete.
    #[error("invalid attributes: {0}")]
    InvalidAttributes(&'static str),
    /// An embed insert that is not a non-empty JSON object, or a retain of
    /// an embed object (quill-delta embed handlers are not supported).
    #[error("invalid embed: {0}")]
    InvalidEmbed(&'static str),
    /// An op boundary falls inside a UTF-16 surrogate pair.
    #[error("op boundary splits a UTF-16 surrogate pair")]
    SplitSurrogatePair,
    /// A delta retains or deletes past the end of the document.
    #[error("delta reaches past the end of the document ({needed} > {length})")]
    RetainPastEnd {
        /// Length the delta needs.
        needed: usize,
        /// The document's length.
        length: usize,
    },
    /// A document delta contains something other than inserts.
    #[error("not a document: documents contain only inserts")]
    NotADocument,
    /// More ops or a larger length than the limits allow.
    #[error("delta too large: {0}")]
    Oversize(&'static str),
}
