//! `sealcast serve`: the realtime relay.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tracing::info;

use super::CliError;
use crate::config::{ConfigError, Overrides, ServerConfig};
use crate::http::server;
use crate::logging::{self, LogFormat};
use crate::state::{AppsReloaded, ServerState};
use crate::tls::Certificates;

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
    /// TLS: PEM certificate chain; with --tls-key the port serves wss:// and
    /// https:// (reloaded on SIGHUP or change) [env: SEALCAST_TLS_CERT].
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// TLS: PEM private key of --tls-cert [env: SEALCAST_TLS_KEY].
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let overrides = Overrides {
        config_file: args.config,
        host: args.host,
        port: args.port,
        data_dir: args.data_dir,
        cluster: args.cluster,
        log_format: args.log_format,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    };
    // A config that does not load is reported by `main` on stderr, before
    // any logger exists.
    let config = ServerConfig::load(&overrides, env)?;
    logging::init(config.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        // Open the document store (and start webhook workers) before
        // announcing the address, so a bad data directory fails fast.
        let certificates = config.tls.clone().map(Certificates::load).transpose().map_err(ConfigError::from)?;
        let state = crate::boot::start(config).await?;
        let config = &state.config;
        let listener = bind(&config.host, config.port, config.reuse_port).await?;
        // SIGHUP is handled before the address is announced: an operator
        // (or a test) who reloads right after start never kills the process
        // with the signal's default action.
        spawn_reloads(state.clone(), overrides, certificates.clone());
        let address = listener.local_addr()?;
        // Tests and scripts read this line to find the port when --port 0.
        println!("sealcast listening on {address}");
        if config.demo_app {
            let app = &config.apps[0];
            let (tls, transport) = if certificates.is_some() { ("true", "wss") } else { ("false", "ws") };
            println!(
                "No app configured: serving a demo app.\n  app id:     {}\n  app key:    {}\n  app secret: {}\n\
                 Connect with pusher-js:\n  new Pusher(\"{}\", {{ wsHost: \"{}\", wsPort: {port}, wssPort: {port}, forceTLS: {tls}, enabledTransports: [\"{transport}\"], cluster: \"\" }})",
                app.id, app.key, app.secret, app.key, address.ip(), port = address.port()
            );
        }
        info!(%address, tls = certificates.is_some(), apps = config.apps.len(), data_dir = %config.data_dir.display(), "serving");
        crate::memory::spawn_trimmer(state.clone());
        server::serve(state.clone(), listener, certificates, shutdown_signal()).await?;
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

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reloads on SIGHUP (the config's apps and the TLS pair) and when the TLS
/// files change (checked every `tls_watch_secs`).
fn spawn_reloads(state: Arc<ServerState>, overrides: Overrides, certificates: Option<Arc<Certificates>>) {
    let watch_interval = state.config.tls_watch_interval;
    // Registered now, not in the task: from here on SIGHUP reloads.
    #[cfg(unix)]
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|err| tracing::warn!(error = %err, "no SIGHUP handler: reload by restarting"))
        .ok();
    #[cfg(not(unix))]
    let mut hangups = None::<()>;
    tokio::spawn(async move {
        let mut watch = tokio::time::interval(watch_interval);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = hangup(&mut hangups) => {
                    info!("SIGHUP: reloading the configuration");
                    reload_apps(&state, &overrides);
                    if let Some(certificates) = &certificates {
                        certificates.reload_and_log(false);
                    }
                }
                _ = watch.tick(), if certificates.is_some() => {
                    if let Some(certificates) = &certificates {
                        certificates.reload_and_log(true);
                    }
                }
            }
        }
    });
}

/// Reads the configuration again and serves its apps (the rest of it is
/// read at start only). A configuration that does not load is refused
/// with one line, and the apps stay as they were.
fn reload_apps(state: &ServerState, overrides: &Overrides) {
    let config = match ServerConfig::load(overrides, env) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "configuration not reloaded: the previous one stays in use");
            return;
        }
    };
    if config.demo_app && state.config.demo_app {
        // Still no app configured: keep the demo app (a new one would
        // have a new random key and secret).
        info!("configuration reloaded: no app configured, the demo app stays");
        return;
    }
    let AppsReloaded { added, changed, removed } = state.reload_apps(config.apps);
    info!(?added, ?changed, ?removed, "configuration reloaded");
}

/// The next SIGHUP (never, without a handler).
#[cfg(unix)]
async fn hangup(signals: &mut Option<tokio::signal::unix::Signal>) {
    let received = match signals {
        Some(signals) => signals.recv().await.is_some(),
        None => false,
    };
    if !received {
        std::future::pending::<()>().await;
    }
}

#[cfg(not(unix))]
async fn hangup(_: &mut Option<()>) {
    std::future::pending().await
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
