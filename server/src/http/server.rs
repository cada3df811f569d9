//! The listener: accepts TCP connections, serves HTTP/1.1 with hyper, routes
//! WebSocket upgrades on `/app/{key}` to [`crate::ws`] and
//! everything else to the HTTP API, health and metrics endpoints (over TLS
//! when configured, [`crate::tls`]); shuts down
//! gracefully (every client gets close code 4200, then the process drains).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sealcast_core::protocol::{codes, handshake};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::connection::{self, Refusal};
use crate::http::api::{self, HttpResponse, text};
use crate::state::ServerState;
use crate::tls::Certificates;

/// How long shutdown waits for connections to finish closing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then stops listening, closes every
/// connection with 4200 and waits (bounded) for them to drain. With `tls`,
/// every connection is TLS (`wss://`, `https://`), its handshake bounded by
/// `http_header_timeout`.
pub async fn serve(
    state: Arc<ServerState>,
    listener: TcpListener,
    tls: Option<Arc<Certificates>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = match tls.map(|certificates| certificates.server_config()).transpose() {
        Ok(config) => config.map(TlsAcceptor::from),
        Err(err) => return Err(std::io::Error::other(err)),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let max_connections = crate::memory::connection_cap(state.config.max_connections);
    let mut http = http1::Builder::new();
    // The header timeout also bounds how long an idle keep-alive
    // connection waits for its next request (hyper starts it whenever it
    // waits for a request head).
    http.timer(TokioTimer::new())
        .header_read_timeout(state.config.http_header_timeout)
        .max_buf_size(64 * 1024);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    crate::warn_throttled!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Every TCP connection (HTTP or WebSocket) counts against the cap;
        // beyond it the socket is closed at once, before any read.
        let Some(slot) = ConnectionSlot::take(&open, max_connections) else {
            state.metrics.connections_refused.inc();
            crate::warn_throttled!(limit = max_connections, "connection refused: at max_connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let stop = stop_rx.clone();
        let http = http.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(tls) = tls else {
                return serve_connection(state, peer, http, stream, stop).await;
            };
            // A client that never finishes its handshake holds a slot no
            // longer than one that never sends its request head.
            match tokio::time::timeout(state.config.http_header_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(state, peer, http, stream, stop).await,
                Ok(Err(err)) => debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake not finished in time"),
            }
        });
    }
    // Stop listening first: a client told to reconnect at once (4200) must
    // be refused at once (to try the next node, or this one restarted), not
    // wait in the backlog of a process that is about to exit and then be
    // reset — pusher-js then waits its unavailable timeout (~15 s).
    drop(listener);
    info!("shutting down: stopped listening, closing connections with 4200");
    let _ = stop_tx.send(true);
    for app in state.apps() {
        app.close_all(codes::RECONNECT_IMMEDIATELY, "server shutting down");
    }
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while state.metrics.connections.get() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    info!(remaining = state.metrics.connections.get(), "shutdown complete");
    Ok(())
}

/// HTTP/1.1 (and WebSocket upgrades) on one accepted connection, plain or
/// TLS, until it ends or the server stops.
async fn serve_connection<Io>(
    state: Arc<ServerState>,
    peer: SocketAddr,
    http: http1::Builder,
    stream: Io,
    mut stop: watch::Receiver<bool>,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| route(state.clone(), peer, request));
    let conn = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => if let Err(err) = result { debug!(error = %err, "http connection ended") },
        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
    }
}

/// One place under the server's connection cap, given back on drop.
struct ConnectionSlot(Arc<std::sync::atomic::AtomicUsize>);

impl ConnectionSlot {
    fn take(open: &Arc<std::sync::atomic::AtomicUsize>, max: usize) -> Option<ConnectionSlot> {
        use std::sync::atomic::Ordering;
        if open.fetch_add(1, Ordering::Relaxed) >= max {
            open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(ConnectionSlot(open.clone()))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn route(
    state: Arc<ServerState>,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if let Some(key) = handshake::app_key_of(&path) {
        return Ok(websocket(state, key, &mut request));
    }
    let response = match (&method, path.as_str()) {
        (&Method::GET, "/health") => text(StatusCode::OK, "OK"),
        (&Method::GET, "/ready") if state.bus.is_healthy() => text(StatusCode::OK, "READY"),
        (&Method::GET, "/ready") => {
            text(StatusCode::SERVICE_UNAVAILABLE, "NOT READY: cluster broker unreachable")
        }
        (&Method::GET, "/metrics") => {
            text(StatusCode::OK, state.metrics.render_with_bus(state.bus.losses()).trim_end())
        }
        (_, p) if p.starts_with("/apps/") => {
            let query = request.uri().query().unwrap_or("").to_owned();
            // Who is asking is checked before a byte of the body is read.
            match api::authenticate(&state, &method, &path, &query) {
                Err(refused) => *refused,
                Ok(request_auth) => {
                    let limit = state.config.max_http_body_bytes;
                    let body = Limited::new(request.into_body(), limit).collect();
                    match tokio::time::timeout(state.config.http_body_timeout, body).await {
                        Ok(Ok(body)) => api::handle(&state, request_auth, &method, &body.to_bytes()),
                        Ok(Err(_)) => {
                            text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large or interrupted")
                        }
                        Err(_) => text(StatusCode::REQUEST_TIMEOUT, "request body not received in time"),
                    }
                }
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    debug!(%peer, %method, %path, status = response.status().as_u16(), "http");
    Ok(response)
}

/// Upgrades `/app/{key}?protocol=7…`. Protocol problems are reported in
/// Pusher's way: the WebSocket opens, gets `pusher:error`, and is closed
/// with the code.
fn websocket(state: Arc<ServerState>, key: &str, request: &mut Request<Incoming>) -> HttpResponse {
    if !fastwebsockets::upgrade::is_upgrade_request(request) {
        return text(StatusCode::UPGRADE_REQUIRED, "this path takes WebSocket connections");
    }
    let refusal = |code, message| Err(Refusal { code, message });
    let protocol = request.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "protocol").map(|(_, v)| v.into_owned())
    });
    let app = match protocol.as_deref().map(str::parse::<u32>) {
        None => refusal(codes::NO_PROTOCOL_VERSION, "no protocol version given"),
        Some(Err(_)) => refusal(codes::INVALID_VERSION_FORMAT, "protocol version is not a number"),
        Some(Ok(version)) if !handshake::SUPPORTED_VERSIONS.contains(&version) => refusal(
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            "unsupported protocol version (this server speaks 5 to 7)",
        ),
        Some(Ok(_)) if key.is_empty() || key.contains('/') => {
            refusal(codes::PATH_NOT_FOUND, "path must be /app/{key}")
        }
        Some(Ok(_)) => state
            .app_by_key(key)
            .ok_or(Refusal { code: codes::APP_DOES_NOT_EXIST, message: "app does not exist" }),
    };
    match fastwebsockets::upgrade::upgrade(request) {
        Ok((response, upgrade)) => {
            tokio::spawn(connection::run(state, app, upgrade));
            response.map(|_| Full::new(Bytes::new()))
        }
        Err(err) => text(StatusCode::BAD_REQUEST, &format!("bad websocket handshake: {err}")),
    }
}
