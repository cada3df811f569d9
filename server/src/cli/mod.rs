//! Subcommands of the `sealcast` binary, one module each.

pub mod envelope;
pub mod keys;
pub mod serve;

use sealcast_core::crypto::CryptoError;

/// Why a CLI command failed. Printed as one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An envelope, key or scope problem.
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    /// Standard input is not a JSON document.
    #[error("input is not valid JSON: {0}")]
    InvalidJson(serde_json::Error),
    /// Reading stdin or writing stdout failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server configuration is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The document store could not be opened.
    #[error("document store: {0}")]
    Store(#[from] crate::docs::StoreError),
    /// A benchmark could not run.
    #[error("bench: {0}")]
    Bench(String),
    /// The server could not start (document store, cluster connection).
    #[error("cannot start: {0}")]
    Startup(#[from] crate::boot::StartupError),
    /// Standard input is larger than the CLI accepts.
    #[error("input is over the {0}-byte limit")]
    InputTooLarge(u64),
}
