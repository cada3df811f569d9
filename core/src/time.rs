//! The time type the state machines are handed (they never read a clock
//! themselves). It is std's `Instant` everywhere but in browsers: on
//! `wasm32-unknown-unknown` std has no clock (`Instant::now` panics), so
//! there it is `web-time`'s, read from `performance.now()`. A platform
//! driver calls `Instant::now()` and passes the value in.

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use std::time::Instant;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub use web_time::Instant;
