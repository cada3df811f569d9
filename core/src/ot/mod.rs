//! Operational transformation on Quill Deltas.
//!
//! A [`Delta`] is a list of [`Op`]s — insert (text or an embed), retain,
//! delete — with lengths in UTF-16 code units, as JavaScript, Java/Kotlin and
//! NSString count them. [`Delta::compose`], [`Delta::transform`],
//! [`Delta::invert`] and [`Delta::transform_position`] follow the
//! `quill-delta` npm package (v5) operation for operation, so web editors
//! built on Quill interoperate; `tests/ot-diff` checks that on 100,000+
//! random cases against the real package. Where quill-delta would cut a
//! surrogate pair in half (it slices JavaScript strings), this engine
//! returns [`OtError::SplitSurrogatePair`] instead, since a Rust string
//! cannot hold half a character. Embed retains (quill-delta's
//! `registerEmbed` handlers) are not supported.

mod attributes;
mod delta;
mod error;
mod iter;
mod json;
mod op;
pub mod session;

pub use attributes::Attributes;
pub use delta::Delta;
pub use error::OtError;
pub use json::MAX_OPS;
pub use op::{Insert, Op};
