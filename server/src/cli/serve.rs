//! `sealcast serve`: the realtime relay.

use std::path::PathBuf;

use clap::Args;
use tracing::info;

use super::CliError;
use crate::config::{Overrides, ServerConfig};
use crate::http::server;
use crate::logging::{self, LogFormat};

#[derive(Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, env = "SEALCAST_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [env: SEALCAST_HOST; default 127.0.0.1].
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one [env: SEALCAST_PORT; default 6001].
    #[arg(long)]
    port: Option<u16>,
    /// Directory for persistent state [env: SEALCAST_DATA_DIR; default ./sealcast-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Cluster mode: the Redis all nodes share, redis://HOST:PORT/DB [env: SEALCAST_CLUSTER].
    #[arg(long)]
    cluster: Option<String>,
    /// Log lines: text (colour only on a terminal) or json, one object per line
    /// [env: SEALCAST_LOG_FORMAT; default text].
    #[arg(long)]
    log_format: Option<LogFormat>,
}

pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let overrides = Overrides {
        config_file: args.config,
        host: args.host,
        port: args.port,
        data_dir: args.data_dir,
        cluster: args.cluster,
        log_format: args.log_format,
    };
    // A config that does not load is reported by `main` on stderr, before
    // any logger exists.
    let config = ServerConfig::load(&overrides, |name| std::env::var(name).ok())?;
    logging::init(config.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        // Open the document store (and start webhook workers) before
        // announcing the address, so a bad data directory fails fast.
        let state = crate::boot::start(config).await?;
        let config = &state.config;
        let listener = bind(&config.host, config.port, config.reuse_port).await?;
        let address = listener.local_addr()?;
        // Tests and scripts read this line to find the port when --port 0.
        println!("sealcast listening on {address}");
        if config.demo_app {
            let app = &config.apps[0];
            println!(
                "No app configured: serving a demo app.\n  app id:     {}\n  app key:    {}\n  app secret: {}\n\
                 Connect with pusher-js:\n  new Pusher(\"{}\", {{ wsHost: \"{}\", wsPort: {}, forceTLS: false, enabledTransports: [\"ws\"], cluster: \"\" }})",
                app.id, app.key, app.secret, app.key, address.ip(), address.port()
            );
        }
        info!(%address, apps = config.apps.len(), data_dir = %config.data_dir.display(), "serving");
        crate::memory::spawn_trimmer(state.clone());
        server::serve(state.clone(), listener, shutdown_signal()).await?;
        Ok::<(), CliError>(())
    })?;
    Ok(())
}

/// The listening socket, with `SO_REUSEPORT` when asked (see
/// `ServerConfig::reuse_port`).
async fn bind(host: &str, port: u16, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for address in tokio::net::lookup_host((host, port)).await? {
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        if reuse_port {
            socket.set_reuseport(true)?;
        }
        #[cfg(not(unix))]
        let _ = reuse_port;
        match socket.bind(address) {
            Ok(()) => return socket.listen(1024),
            Err(err) => last = Some(err),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to bind")))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
