//! Runnable sealcast example apps live in this crate's `examples` targets.
