//! `sealcast`: the sealcast server binary and its tools.
//!
//! `serve` runs the relay; `keys`, `seal` and `open` let app developers and
//! other implementations work with envelopes from the shell.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sealcast_server::{bench, cli};

/// sealcast: end-to-end-encrypted realtime pub/sub.
#[derive(Parser)]
#[command(name = "sealcast", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the realtime server (Pusher protocol v7 compatible).
    Serve(cli::serve::ServeArgs),
    /// Generate and derive keys.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Seal JSON fields of an event read from stdin.
    Seal(cli::envelope::SealArgs),
    /// Open every envelope in an event read from stdin.
    Open(cli::envelope::OpenArgs),
    /// Load generators for Pusher-protocol servers (loopback only).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Keys(command) => cli::keys::run(command),
        Command::Seal(args) => cli::envelope::seal(args),
        Command::Open(args) => cli::envelope::open(args),
        Command::Bench(command) => bench::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, no partial output on stdout (commands print only on success).
            eprintln!("sealcast: error: {err}");
            ExitCode::FAILURE
        }
    }
}
