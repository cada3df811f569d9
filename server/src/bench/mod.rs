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
    /// Server address: ws://HOST:PORT, or wss://HOST:PORT with --ca (the
    /// HTTP API is on the same port, over TLS too).
    #[arg(long, default_value = "ws://127.0.0.1:6001")]
    url: String,
    /// For wss://: the PEM certificate(s) to trust (the server's, or its CA).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
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
        let rest =
            self.url.strip_prefix("ws://").or_else(|| self.url.strip_prefix("wss://")).ok_or_else(|| {
                CliError::Bench(
                    "--url must be ws://HOST:PORT or wss://HOST:PORT (the bench is for loopback use)".into(),
                )
            })?;
        Ok(rest.trim_end_matches('/').to_owned())
    }

    /// For `wss://`: the TLS setup trusting `--ca` (`None` for `ws://`).
    fn tls(&self) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, CliError> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        if !self.url.starts_with("wss://") {
            return Ok(None);
        }
        let ca = self.ca.as_ref().ok_or_else(|| CliError::Bench("wss:// needs --ca FILE (PEM)".into()))?;
        let mut roots = rustls::RootCertStore::empty();
        for certificate in
            CertificateDer::pem_file_iter(ca).map_err(|e| CliError::Bench(format!("--ca: {e}")))?
        {
            let certificate = certificate.map_err(|e| CliError::Bench(format!("--ca: {e}")))?;
            roots.add(certificate).map_err(|e| CliError::Bench(format!("--ca: {e}")))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::Bench(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(std::sync::Arc::new(config)))
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
