//! End-to-end tests of sealcast live in this crate's `tests` targets; this
//! library holds nothing.
