//! sealcast-ffi: the uniffi surface of sealcast-core for Swift, Kotlin and
//! Python. A placeholder until the bindings issue lands: it only re-exports
//! the core so the workspace layout is final from the start.

pub use sealcast_core as core;
