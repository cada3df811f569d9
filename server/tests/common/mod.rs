//! Test harness: a real `sealcast serve` process on a free loopback port,
//! WebSocket clients (tungstenite, an independent implementation) and a
//! signed HTTP API client.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use sealcast_core::protocol::auth;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const APP_ID: &str = "test-app";
pub const APP_KEY: &str = "test-key";
pub const APP_SECRET: &str = "test-secret";

pub use sealcast_tests::TempDir;
use sealcast_tests::{Launch, ServerProcess};

/// A running server with the test app; killed on drop. Derefs to the
/// process (its `child`, `port`, `stderr()`).
pub struct Server {
    process: ServerProcess,
    _dir: Option<TempDir>,
}

impl std::ops::Deref for Server {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

impl Server {
    /// Starts a server whose config file has `extra` TOML appended to the
    /// test app (top-level keys must come in `top`).
    pub fn start(top: &str, app_extra: &str) -> Server {
        Server::start_with_env(top, app_extra, &[])
    }

    pub fn start_with_env(top: &str, app_extra: &str, env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new("server");
        let mut server = Server::start_in(&dir.0, top, app_extra, env);
        server._dir = Some(dir);
        server
    }

    /// Starts a server whose config and data live in `root` (which outlives
    /// it, so another server can restart on the same data).
    pub fn start_in(root: &std::path::Path, top: &str, app_extra: &str, env: &[(&str, &str)]) -> Server {
        Server::start_in_on(root, 0, top, app_extra, env)
    }

    /// [`Server::start_in`] on a given port (0: any free one).
    pub fn start_in_on(
        root: &std::path::Path,
        port: u16,
        top: &str,
        app_extra: &str,
        env: &[(&str, &str)],
    ) -> Server {
        let config = format!(
            "{top}\n[[apps]]\nid = \"{APP_ID}\"\nkey = \"{APP_KEY}\"\nsecret = \"{APP_SECRET}\"\n{app_extra}\n"
        );
        // SEALCAST_TEST_BIN runs the suite against another build (e.g. to
        // see a regression test fail on the build before the fix).
        let bin: PathBuf = std::env::var("SEALCAST_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sealcast").into())
            .into();
        let log = std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "debug".into());
        let mut vars = vec![("RUST_LOG", log.as_str())];
        vars.extend(env.iter().copied());
        let process = ServerProcess::start(&Launch { bin: &bin, root, port, config: &config, env: &vars });
        Server { process, _dir: None }
    }

    pub fn ws_url(&self, key: &str, query: &str) -> String {
        format!("ws://127.0.0.1:{}/app/{key}?{query}", self.port)
    }

    /// Connects a client to the test app with protocol 7 and reads
    /// `connection_established`.
    pub async fn client(&self) -> Client {
        let mut client = Client::connect(&self.ws_url(APP_KEY, "protocol=7&client=test&version=1")).await;
        let established = client.expect_event("pusher:connection_established").await;
        let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
        client.socket_id = data["socket_id"].as_str().unwrap().to_owned();
        client
    }

    /// A signed HTTP API request; returns (status, body).
    pub fn api(&self, method: &str, path: &str, params: &[(&str, &str)], body: &str) -> (u16, String) {
        self.api_signed(method, path, params, body, APP_SECRET, now())
    }

    pub fn api_signed(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
        secret: &str,
        timestamp: u64,
    ) -> (u16, String) {
        let query = signed_query(method, path, params, body.as_bytes(), secret, timestamp);
        http(self.port, method, &format!("{path}?{query}"), body)
    }

    pub fn publish(&self, channel: &str, event: &str, data: &str) -> (u16, String) {
        let body = json!({"name": event, "channel": channel, "data": data}).to_string();
        self.api("POST", &format!("/apps/{APP_ID}/events"), &[], &body)
    }
}

/// The server's stderr once it holds `wanted` at least `times` times
/// (bounded wait: the log is read by a thread); panics with the log
/// otherwise.
pub async fn logged(server: &Server, wanted: &str, times: usize) -> String {
    for _ in 0..200 {
        let logs = server.stderr();
        if logs.matches(wanted).count() >= times {
            return logs;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{wanted:?} not logged {times} times:\n{}", server.stderr());
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Pusher's HTTP API signature for the test app, as the `pusher` server
/// libraries compute it.
pub fn signed_query(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    secret: &str,
    timestamp: u64,
) -> String {
    sealcast_server::http::api::signed_query(APP_KEY, secret, method, path, params, body, timestamp)
}

/// A minimal HTTP/1.1 request over a fresh connection.
pub fn http(port: u16, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut stream = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Drives a document client over `client` for up to `wait`: sends what it
/// produces, runs its timers, feeds it every frame received (appending the
/// raw text to `wire` when given), and fails on `Diverged` or on a refusal
/// the client does not retry. Returns how many refusals it retries.
pub async fn pump_doc(
    doc: &mut sealcast_core::doc::DocClient,
    client: &mut Client,
    wait: Duration,
    wire: Option<&mut String>,
) -> u64 {
    pump_doc_with(doc, client, wait, wire, None).await
}

/// An app server's document session keys (docs/keys.md): a request without
/// hint gets a new session key and its hint, one with a hint that session's
/// key. Shared by every client of a test, as one app server.
#[allow(dead_code)] // not every test binary uses it
#[derive(Default)]
pub struct SessionKeys(Mutex<std::collections::HashMap<String, [u8; 32]>>);

#[allow(dead_code)]
impl SessionKeys {
    /// The key for a request with `hint`, and the hint of a new session.
    pub fn grant(&self, hint: Option<&str>) -> Result<(sealcast_core::crypto::Key, Option<String>), String> {
        use sealcast_core::crypto::Key;
        let mut sessions = self.0.lock().unwrap();
        match hint {
            Some(hint) => {
                let key = sessions.get(hint).ok_or_else(|| format!("no session {hint}"))?;
                Ok((Key::from_bytes(key), None))
            }
            None => {
                let hint = format!("session-{}", sessions.len() + 1);
                let key = Key::generate().map_err(|e| e.to_string())?;
                sessions.insert(hint.clone(), *key.expose_secret());
                Ok((key, Some(hint)))
            }
        }
    }

    /// The hints issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

/// [`pump_doc`], answering the document's requests for its session key from
/// `keys`.
pub async fn pump_doc_with(
    doc: &mut sealcast_core::doc::DocClient,
    client: &mut Client,
    wait: Duration,
    mut wire: Option<&mut String>,
    keys: Option<&SessionKeys>,
) -> u64 {
    use sealcast_core::doc::DocClientEvent;
    let deadline = tokio::time::Instant::now() + wait;
    let mut retried = 0;
    loop {
        doc.handle_timeout(Instant::now());
        while let Some(message) = doc.poll_transmit() {
            client.send_raw(&message.encode(doc.channel())).await;
        }
        while let Some(event) = doc.poll_event() {
            match event {
                DocClientEvent::Refused { retry_in: Some(_), .. } => retried += 1,
                DocClientEvent::Diverged { .. } | DocClientEvent::Refused { .. } => panic!("{event:?}"),
                DocClientEvent::KeyNeeded { kid, kv: None, key_hint } if keys.is_some() => {
                    let (key, hint) = keys.unwrap().grant(key_hint.as_deref()).unwrap();
                    doc.add_key(&kid, 1, key, hint).unwrap();
                }
                _ => {}
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline && wait > Duration::ZERO {
            return retried;
        }
        let until = doc.poll_timeout().map_or(deadline, |at| deadline.min(at.into()));
        match client.next_within(until.saturating_duration_since(now)).await {
            Some(Seen::Frame(frame)) => {
                if let Some(wire) = wire.as_deref_mut() {
                    wire.push_str(&frame.to_string());
                }
                let event = frame["event"].as_str().unwrap_or_default();
                doc.handle_event(event, &frame["data"], frame["user_id"].as_str(), Instant::now()).unwrap();
            }
            Some(Seen::Closed(code)) => panic!("closed: {code:?}"),
            None if tokio::time::Instant::now() < deadline => {}
            None => return retried,
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A WebSocket client speaking raw Pusher frames.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
}

/// What a client saw next.
#[derive(Debug)]
pub enum Seen {
    Frame(Value),
    Closed(Option<u16>),
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        Client::try_connect(url).await.expect("websocket connect")
    }

    /// Connects and reads `connection_established`; `None` if the server
    /// is not there (e.g. restarting).
    pub async fn try_connect(url: &str) -> Option<Client> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
        Some(Client { ws, socket_id: String::new() })
    }

    /// Connects over TLS (`wss://`), trusting only `roots` (DER).
    pub async fn connect_tls(url: &str, roots: &[Vec<u8>]) -> Result<Client, String> {
        let connector = tokio_tungstenite::Connector::Rustls(tls_client(roots));
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector))
            .await
            .map_err(|err| err.to_string())?;
        Ok(Client { ws, socket_id: String::new() })
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    /// Sends a text frame; false if the connection is gone.
    pub async fn try_send_raw(&mut self, text: &str) -> bool {
        self.ws.send(Message::Text(text.to_owned().into())).await.is_ok()
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.to_owned().into())).await.unwrap();
    }

    /// The next frame or close, within 5 s.
    pub async fn next(&mut self) -> Seen {
        self.next_within(Duration::from_secs(5)).await.expect("timed out waiting for the server")
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Seen> {
        loop {
            let message = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(Seen::Closed(None)),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    return Some(Seen::Frame(serde_json::from_str(&text).expect("server sent JSON")));
                }
                Message::Close(frame) => return Some(Seen::Closed(frame.map(|f: CloseFrame| f.code.into()))),
                _ => continue,
            }
        }
    }

    /// Reads frames until one with `event`, returning it.
    pub async fn expect_event(&mut self, event: &str) -> Value {
        loop {
            match self.next().await {
                Seen::Frame(frame) if frame["event"] == event => return frame,
                Seen::Frame(_) => continue,
                Seen::Closed(code) => panic!("closed ({code:?}) while waiting for {event}"),
            }
        }
    }

    /// Reads frames until one whose event is in `events`, returning it.
    pub async fn expect_event_any(&mut self, events: &[&str]) -> Value {
        loop {
            match self.next().await {
                Seen::Frame(frame) if events.iter().any(|e| frame["event"] == *e) => return frame,
                Seen::Frame(_) => continue,
                Seen::Closed(code) => panic!("closed ({code:?}) while waiting for {events:?}"),
            }
        }
    }

    /// Reads until the connection closes; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            if let Seen::Closed(code) =
                self.next_within(Duration::from_secs(15)).await.expect("connection did not close")
            {
                return code;
            }
        }
    }

    /// Signs in as `user_id` (Pusher user authentication).
    pub async fn sign_in(&mut self, user_id: &str) {
        let user_data = json!({"id": user_id}).to_string();
        let signature = auth::user_signature(APP_SECRET, &self.socket_id, &user_data);
        let auth = format!("{APP_KEY}:{signature}");
        self.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await;
        self.expect_event("pusher:signin_success").await;
    }

    pub async fn subscribe(&mut self, channel: &str, auth: Option<&str>, channel_data: Option<&str>) {
        let mut data = json!({"channel": channel});
        if let Some(auth) = auth {
            data["auth"] = json!(auth);
        }
        if let Some(channel_data) = channel_data {
            data["channel_data"] = json!(channel_data);
        }
        self.send(json!({"event": "pusher:subscribe", "data": data})).await;
    }

    /// Subscribes with a valid HMAC signature and waits for success.
    pub async fn join(&mut self, channel: &str, channel_data: Option<&str>) -> Value {
        let auth = channel
            .starts_with("private-")
            .then(|| auth::channel_auth(APP_KEY, APP_SECRET, &self.socket_id, channel, None))
            .or_else(|| {
                channel
                    .starts_with("presence-")
                    .then(|| auth::channel_auth(APP_KEY, APP_SECRET, &self.socket_id, channel, channel_data))
            });
        self.subscribe(channel, auth.as_deref(), channel_data).await;
        self.expect_event("pusher_internal:subscription_succeeded").await
    }
}

/// A TCP proxy to a backend port that can be cut (every connection closed,
/// new ones refused), pointed elsewhere, and restored.
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    backend: Arc<AtomicU16>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(backend: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, links) = (Arc::new(AtomicBool::new(true)), Arc::new(Mutex::new(Vec::new())));
        let backend = Arc::new(AtomicU16::new(backend));
        let (accept_open, accept_links, accept_backend) = (open.clone(), links.clone(), backend.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let backend = accept_backend.load(Ordering::SeqCst);
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", backend)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accept_links.lock().unwrap().push(link);
            }
        });
        Proxy { port, open, backend, links }
    }

    /// Closes every connection; new ones are refused until `restore`.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.links.lock().unwrap().drain(..).for_each(|link| link.abort());
    }

    /// Accepts connections again, to `backend` from now on.
    pub fn restore_to(&self, backend: u16) {
        self.backend.store(backend, Ordering::SeqCst);
        self.restore();
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM,
/// certificate DER).
pub fn self_signed() -> (String, String, Vec<u8>) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (pair.cert.pem(), pair.signing_key.serialize_pem(), pair.cert.der().to_vec())
}

/// The config lines that give a server the TLS pair `dir/tls.crt`,
/// `dir/tls.key` (top-level keys: before any `[[apps]]`).
pub fn tls_config_lines(dir: &std::path::Path) -> String {
    format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        dir.join("tls.crt").display().to_string(),
        dir.join("tls.key").display().to_string()
    )
}

/// Writes a new self-signed pair into `dir` (see [`tls_config_lines`]);
/// returns the config lines and the certificate (DER) to trust.
pub fn with_self_signed_tls(dir: &std::path::Path) -> (String, Vec<u8>) {
    let (cert, key, der) = self_signed();
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
    (tls_config_lines(dir), der)
}

/// A rustls client configuration trusting only `roots` (DER).
pub fn tls_client(roots: &[Vec<u8>]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(rustls::pki_types::CertificateDer::from(root.clone())).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    Arc::new(config)
}

/// One HTTP/1.1 request over TLS to `localhost:port`, trusting only
/// `roots`; (status, body) or why the connection failed.
pub async fn https(
    port: u16,
    roots: &[Vec<u8>],
    method: &str,
    target: &str,
    body: &str,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|err| err.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(tls_client(roots))
        .connect(name, tcp)
        .await
        .map_err(|err| err.to_string())?;
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.map_err(|err| err.to_string())?;
    let mut response = Vec::new();
    // A close_notify-less end is fine here: the body has been read.
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status =
        text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("no status line in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// A TLS terminator in front of a local service: a self-signed certificate
/// for `localhost`, forwarding every connection to `backend`. Returns its port
/// and the certificate (DER).
pub async fn tls_front(backend: u16) -> (u16, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = certified.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![rustls::pki_types::CertificateDer::from(cert.clone())], key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, cert)
}

/// A throwaway `redis-server` on a loopback port (never a shared one);
/// killed on drop.
pub struct Redis {
    child: std::process::Child,
    pub port: u16,
}

impl Redis {
    pub fn start_on(port: u16) -> Option<Redis> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis { child, port })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh Redis, or `None` (with a message) where redis-server is not
/// installed (scripts/test.sh installs it).
pub fn redis() -> Option<Redis> {
    if std::process::Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("redis-server is not installed: skipping (scripts/test.sh installs it)");
        return None;
    }
    Redis::start_on(free_port())
}

/// A node of a cluster on `redis`, its data under `dir/name`, the test app
/// with `app_extra` (top-level keys must come in `top`).
pub fn cluster_node(redis: &Redis, dir: &TempDir, name: &str, top: &str, app_extra: &str) -> Server {
    let root = dir.0.join(name);
    std::fs::create_dir_all(&root).unwrap();
    let top = format!("cluster = \"{}\"\n{top}", redis.url());
    Server::start_in(&root, &top, app_extra, &[("RUST_LOG", "info")])
}
