//! `sealcast serve`: the realtime relay.
//!
//! Not built yet: the Pusher-protocol server is the next issue. Until then
//! this command says so plainly and exits with an error, rather than
//! pretending to serve.

use clap::Args;

use super::CliError;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SEALCAST_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, env = "SEALCAST_PORT", default_value_t = 6001)]
    port: u16,
}

pub fn run(args: ServeArgs) -> Result<(), CliError> {
    eprintln!(
        "sealcast serve ({}:{}) is not implemented yet.\n\
         Planned: a Pusher Channels protocol v7 compatible relay (public, private-, presence- channels,\n\
         client- events, the HTTP events API) that never sees plaintext; see docs/architecture.md.\n\
         Available now: `sealcast keys new|derive|thumbprint`, `sealcast seal`, `sealcast open`.",
        args.host, args.port
    );
    Err(CliError::NotImplemented("`sealcast serve`"))
}
