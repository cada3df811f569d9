//! `sealcast seal` / `sealcast open`: envelopes from the shell, for app
//! developers and for testing other implementations against this one.

use std::io::{Read, Write};

use clap::Args;
use sealcast_core::crypto::{Key, KeyRing, Scope, open_fields, seal_fields};
use serde_json::Value;

use super::CliError;

/// Largest event read from stdin.
const MAX_INPUT: u64 = 16 << 20;

#[derive(Args)]
pub struct KeyArgs {
    /// The key (base64url). Prefer the SEALCAST_KEY environment variable:
    /// command-line arguments are visible to other local users.
    #[arg(long, env = "SEALCAST_KEY", hide_env_values = true, allow_hyphen_values = true)]
    key: String,
    /// Key id.
    #[arg(long)]
    kid: String,
    /// Key version.
    #[arg(long)]
    kv: u32,
    /// Scope: chat:ROOM:MESSAGE, call:CALL:EVENT, custom:SCOPE:SCOPE_ID:EVENT or doc:DOC:KIND:SEQ.
    #[arg(long)]
    scope: String,
}

#[derive(Args)]
pub struct SealArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// RFC 6901 pointer of a field to seal (repeatable; "" seals the whole event).
    #[arg(long = "path", required = true)]
    paths: Vec<String>,
}

#[derive(Args)]
pub struct OpenArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Fail unless this pointer holds an envelope (repeatable).
    #[arg(long = "require")]
    required: Vec<String>,
}

pub fn seal(args: SealArgs) -> Result<(), CliError> {
    let (mut ring, scope) = args.key.resolve()?;
    let mut event = read_stdin_json()?;
    let paths: Vec<&str> = args.paths.iter().map(String::as_str).collect();
    seal_fields(&mut event, &paths, &mut ring, &args.key.kid, &scope)?;
    print_json(&event)
}

pub fn open(args: OpenArgs) -> Result<(), CliError> {
    let (ring, scope) = args.key.resolve()?;
    let mut event = read_stdin_json()?;
    let required: Vec<&str> = args.required.iter().map(String::as_str).collect();
    open_fields(&mut event, &ring, &scope, &required)?;
    print_json(&event)
}

impl KeyArgs {
    fn resolve(&self) -> Result<(KeyRing, Scope), CliError> {
        let key = Key::from_base64url(&self.key)?;
        let ring = KeyRing::single(&self.kid, self.kv, key)?;
        Ok((ring, self.scope.parse()?))
    }
}

fn read_stdin_json() -> Result<Value, CliError> {
    let mut input = Vec::new();
    std::io::stdin().lock().take(MAX_INPUT + 1).read_to_end(&mut input)?;
    if input.len() as u64 > MAX_INPUT {
        return Err(CliError::InputTooLarge(MAX_INPUT));
    }
    serde_json::from_slice(&input).map_err(CliError::InvalidJson)
}

fn print_json(value: &Value) -> Result<(), CliError> {
    let mut text = serde_json::to_string(value).map_err(CliError::InvalidJson)?;
    text.push('\n');
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
