//! `sealcast bench`: a load generator for any Pusher-protocol server
//! (sealcast, Sockudo, …), so both sides of a comparison are measured by the
//! same client. Loopback use only; every run is bounded in time and size.
//!
//! - `fanout`: N WebSocket subscribers on one channel, M events published
//!   through the HTTP API at a given rate; delivered msgs/s, end-to-end
//!   latency percentiles, losses, and (with `--server-pid`) server CPU time
//!   per delivered message.
//! - `connections`: N idle connections; server RSS per connection.
//! - `doc-sequencer`, `doc-join`: document channels (sealcast only); see
//!   [`docs`].

mod client;
mod connections;
mod doc_opens;
mod docs;
mod fanout;
mod proc_stats;

use clap::{Args, Subcommand};

use super::cli::CliError;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Fan-out throughput and latency.
    Fanout(fanout::FanoutArgs),
    /// Memory per idle connection.
    Connections(connections::ConnectionsArgs),
    /// Document ops acknowledged per second (sealcast document channels).
    DocSequencer(docs::SequencerArgs),
    /// Time to join a document with a long history via its snapshot.
    DocJoin(docs::JoinArgs),
    /// Many clients opening documents at once.
    DocOpens(doc_opens::OpensArgs),
}

/// Where the server under test is.
#[derive(Args, Clone)]
pub struct Target {
    /// Server address: ws://HOST:PORT (the HTTP API is on the same port).
    #[arg(long, default_value = "ws://127.0.0.1:6001")]
    url: String,
    /// App id (HTTP API).
    #[arg(long)]
    app_id: String,
    /// App key.
    #[arg(long)]
    key: String,
    /// App secret (signs HTTP API requests).
    #[arg(long, env = "SEALCAST_BENCH_SECRET", hide_env_values = true)]
    secret: String,
    /// PID of the server process, to report its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
}

impl Target {
    /// `host:port` from the URL.
    fn authority(&self) -> Result<String, CliError> {
        let rest = self.url.strip_prefix("ws://").ok_or_else(|| {
            CliError::Bench("--url must be ws://HOST:PORT (the bench is for loopback use)".into())
        })?;
        Ok(rest.trim_end_matches('/').to_owned())
    }
}

pub fn run(command: BenchCommand) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            BenchCommand::Fanout(args) => fanout::run(args).await,
            BenchCommand::Connections(args) => connections::run(args).await,
            BenchCommand::DocSequencer(args) => docs::sequencer(args).await,
            BenchCommand::DocJoin(args) => docs::join(args).await,
            BenchCommand::DocOpens(args) => doc_opens::run(args).await,
        }
    })
}
