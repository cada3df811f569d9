//! `sealcast keys`: generate, derive and fingerprint keys.

use clap::Subcommand;
use sealcast_core::crypto::{Key, derive_document_key};

use super::CliError;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print a fresh random 32-byte key as unpadded base64url.
    New,
    /// Derive a per-document (per-session) key with HKDF-SHA256; deterministic.
    Derive {
        /// The app master key (base64url).
        #[arg(long, env = "SEALCAST_MASTER_KEY", hide_env_values = true, allow_hyphen_values = true)]
        master: String,
        /// Document id.
        #[arg(long)]
        doc: String,
        /// Salt; its UTF-8 bytes are the HKDF salt (see docs/keys.md).
        #[arg(long)]
        salt: String,
    },
    /// Print a key's non-secret thumbprint (usable as a key hint).
    Thumbprint {
        /// The key (base64url).
        #[arg(long, env = "SEALCAST_KEY", hide_env_values = true, allow_hyphen_values = true)]
        key: String,
    },
}

pub fn run(command: KeysCommand) -> Result<(), CliError> {
    let line = match command {
        KeysCommand::New => Key::generate()?.to_base64url(),
        KeysCommand::Derive { master, doc, salt } => {
            let master = Key::from_base64url(&master)?;
            derive_document_key(&master, &doc, salt.as_bytes()).to_base64url()
        }
        KeysCommand::Thumbprint { key } => Key::from_base64url(&key)?.thumbprint(),
    };
    println!("{line}");
    Ok(())
}
