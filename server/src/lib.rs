//! sealcast-server: the blind realtime relay behind the `sealcast` binary.
//!
//! A library so that the binary, the load generator and the fuzz targets
//! share one implementation; the supported interface is the binary
//! (`docs/cli.md`, `docs/protocol.md`). See `docs/architecture.md` for what
//! each module owns.

pub mod app;
pub mod bench;
pub mod boot;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod directory;
pub mod docs;
pub mod history;
pub mod http;
pub mod jwt;
pub mod log_throttle;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod rate;
pub mod redis_sync;
pub mod state;
pub mod time;
pub mod tls;
pub mod webhooks;
pub mod ws;

#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
