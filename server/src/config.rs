//! Server configuration: a TOML file, `SEALCAST_*` environment variables and
//! command-line flags, validated once into [`ServerConfig`].
//!
//! Precedence: flags > environment > file > defaults. With no app configured
//! anywhere, a demo app with a random key and secret is created (and printed
//! by `serve`). See `docs/configuration.md`.

use crate::logging::LogFormat;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration was rejected (caused by: the operator).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column included).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// An app's JWT key is unusable.
    #[error("invalid configuration: app {app:?}: {source}")]
    JwtKey {
        /// The app's id.
        app: String,
        /// What is wrong with the key.
        source: crate::jwt::JwtKeyError,
    },
    /// The listener's TLS certificate or key is unusable.
    #[error("invalid configuration: tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// An app's webhook is unusable.
    #[error("invalid configuration: app {app:?}: {source}")]
    Webhook {
        /// The app's id.
        app: String,
        /// What is wrong with the webhook.
        source: crate::webhooks::WebhookConfigError,
    },
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free port; the bound address is logged).
    pub port: u16,
    /// Where persistent state lives (documents, later).
    pub data_dir: PathBuf,
    /// Seconds of client silence before the server pings it; also sent to
    /// clients as `activity_timeout`.
    pub activity_timeout: Duration,
    /// How long a pinged client has to answer before it is closed (4201).
    pub pong_timeout: Duration,
    /// Threads running connections and fan-out (0: one per CPU core).
    pub worker_threads: usize,
    /// How log lines look: text (colour only on a terminal) or JSON.
    pub log_format: LogFormat,
    /// Bind with `SO_REUSEPORT` (Unix): a new process can listen on the
    /// port while the old one still runs, so a restart is "start the new
    /// one, then SIGTERM the old" and clients told 4200 reconnect to the
    /// new one at once. Off by default: two servers started on one port by
    /// mistake would otherwise share it silently.
    pub reuse_port: bool,
    /// Frames queued per connection before it counts as a slow consumer and
    /// is closed with 4100.
    pub max_outbound_queue: usize,
    /// Bytes queued per connection before it counts as a slow consumer and
    /// is closed with 4100 (must hold the largest single answer: a join
    /// page plus a snapshot).
    pub max_outbound_bytes: usize,
    /// Largest WebSocket message accepted from a client, in bytes, all its
    /// fragments together (over it: close 1009).
    pub max_frame_bytes: usize,
    /// Most open TCP connections (HTTP and WebSocket) for the whole server;
    /// beyond it new sockets are closed at once.
    pub max_connections: usize,
    /// How long an HTTP client may take to send a request's headers, and
    /// how long an idle keep-alive connection is kept.
    pub http_header_timeout: Duration,
    /// How long an HTTP client may take to send a request's body.
    pub http_body_timeout: Duration,
    /// After a connection's close frame, how long the client's further
    /// input is read and dropped while waiting for it to close (a socket
    /// closed with unread input resets, and the reset can cost the client
    /// the close frame).
    pub close_linger: Duration,
    /// ... and how many bytes of it at most.
    pub close_linger_bytes: usize,
    /// Largest HTTP API request body, in bytes.
    pub max_http_body_bytes: usize,
    /// Cluster messages one app may have waiting for Redis; beyond it the
    /// app's publishes are refused (HTTP 503, `pusher:error`).
    pub cluster_outbox_per_app: usize,
    /// How often a cluster node reconciles presence and occupancy with
    /// Redis (docs/scaling.md, "Consistency").
    pub cluster_resync_interval: Duration,
    /// Allowed clock skew for HTTP API `auth_timestamp`.
    pub http_timestamp_window: Duration,
    /// TLS on the listener (`wss://` and `https://` on `port`): the
    /// certificate chain and key files (`None`: plain `ws://`/`http://`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// How often the TLS files are checked for a change on disk (a changed
    /// pair is loaded without a restart; SIGHUP loads it at once).
    pub tls_watch_interval: Duration,
    /// The apps served.
    pub apps: Vec<AppConfig>,
    /// True when `apps` holds the generated demo app.
    pub demo_app: bool,
    /// Cluster mode: `redis://HOST:PORT/DB` of the Redis all nodes share
    /// (`None`: a single node with an in-process broker).
    pub cluster: Option<String>,
    /// Storage limits of documents (`[documents]`).
    pub documents: crate::docs::DocLimits,
    /// Where channel history is kept and its page size (`[history]`; which
    /// channels keep it is each app's `[[apps.history]]`).
    pub history: crate::history::HistorySettings,
}

/// One app: its credentials and limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// App id (HTTP API paths: `/apps/{id}/…`).
    pub id: String,
    /// App key (WebSocket path `/app/{key}`, signatures' `key:` prefix).
    pub key: String,
    /// App secret (HMAC key). Never logged.
    pub secret: String,
    /// Whether clients may send `client-` events.
    #[serde(default = "yes")]
    pub enable_client_messages: bool,
    /// Most simultaneous connections (0 = unlimited).
    #[serde(default)]
    pub max_connections: usize,
    /// Largest event `data`, in bytes (Pusher's default 10 KB).
    #[serde(default = "default_max_payload")]
    pub max_event_payload_bytes: usize,
    /// Client events per connection per second (Pusher's default 10).
    #[serde(default = "default_client_rate")]
    pub client_events_per_second: u32,
    /// Most members in one presence channel.
    #[serde(default = "default_presence_members")]
    pub max_presence_members: usize,
    /// Largest presence `channel_data`, in bytes.
    #[serde(default = "default_presence_data")]
    pub max_presence_data_bytes: usize,
    /// Most channels in one HTTP publish.
    #[serde(default = "default_event_channels")]
    pub max_event_channels: usize,
    /// Most events in one `batch_events` call.
    #[serde(default = "default_batch_size")]
    pub max_batch_size: usize,
    /// Document ops submitted per connection per second.
    #[serde(default = "default_doc_rate")]
    pub doc_ops_per_second: u32,
    /// Frames of any kind per connection per second, checked before a
    /// frame is parsed (each kind also has its own rate below).
    #[serde(default = "default_frame_rate")]
    pub frames_per_second: u32,
    /// `pusher:subscribe` + `pusher:unsubscribe` per connection per second
    /// (bursts of this many: a reconnecting client resubscribes at once).
    #[serde(default = "default_subscription_rate")]
    pub subscriptions_per_second: u32,
    /// Presence subscriptions and unsubscriptions per connection per second
    /// (each is a `member_added`/`member_removed` to every member).
    #[serde(default = "default_presence_rate")]
    pub presence_changes_per_second: u32,
    /// `pusher:signin` per connection per second.
    #[serde(default = "default_slow_rate")]
    pub signins_per_second: u32,
    /// `pusher:ping` and WebSocket pings per connection per second.
    #[serde(default = "default_slow_rate")]
    pub pings_per_second: u32,
    /// `sealcast:doc-join` per connection per second (each answer is a
    /// page of history, up to `[documents] max_join_page_bytes`).
    #[serde(default = "default_join_rate")]
    pub doc_joins_per_second: u32,
    /// `sealcast:doc-digest` per connection per second (each is relayed to
    /// every subscriber).
    #[serde(default = "default_join_rate")]
    pub doc_digests_per_second: u32,
    /// `sealcast:doc-snapshot` per connection per second (each is a stored,
    /// synced write).
    #[serde(default = "default_snapshot_rate")]
    pub doc_snapshots_per_second: u32,
    /// Other frames (pongs, binary, malformed, unknown events) per
    /// connection per second.
    #[serde(default = "default_other_rate")]
    pub other_frames_per_second: u32,
    /// Refused frames a connection may send within 10 s before it is
    /// closed with 4301.
    #[serde(default = "default_strikes")]
    pub rate_limit_strikes: u32,
    /// Most channels one connection may be subscribed to.
    #[serde(default = "default_subscriptions_per_connection")]
    pub max_subscriptions_per_connection: usize,
    /// Most occupied channels in the app on this node (new channels are
    /// refused beyond it; existing ones can still be joined).
    #[serde(default = "default_max_channels")]
    pub max_channels: usize,
    /// Public keys for JWT channel authorization (see docs/auth.md).
    #[serde(default)]
    pub jwt_keys: Vec<crate::jwt::JwtKeyConfig>,
    /// Webhook endpoints.
    #[serde(default)]
    pub webhooks: Vec<crate::webhooks::WebhookConfig>,
    /// Pusher's "authorized connections": when not 0, a connection must
    /// sign in (`pusher:signin`) within this many seconds, else it is
    /// closed with 4009. 0 (the default): sign-in is optional.
    #[serde(default)]
    pub require_signin_secs: u64,
    /// Several events per webhook request (up to 50, gathered for up to
    /// 100 ms). Off by default, as in Pusher: one event per request.
    #[serde(default)]
    pub webhook_batching: bool,
    /// PEM certificates trusted for `https://` webhook endpoints besides
    /// the public (webpki) roots: a private CA.
    #[serde(default)]
    pub webhook_ca_file: Option<PathBuf>,
    /// How long a webhook request is retried (exponential backoff from
    /// 0.5 s, at most 30 s apart) before it is dropped and counted: a
    /// receiver down this long (a deploy, a restart) loses nothing.
    #[serde(default = "default_webhook_retry_secs")]
    pub webhook_retry_secs: u64,
    /// Bytes of webhook events the app may have waiting (gathered, or
    /// queued for an endpoint that is down: an event counts once per
    /// endpoint holding it); beyond it new events are dropped and counted
    /// (`sealcast_webhooks_dropped_total`).
    #[serde(default = "default_webhook_queue_bytes")]
    pub webhook_max_queue_bytes: usize,
    /// Channels that keep history, and how much (`[[apps.history]]`; the
    /// first rule matching a channel applies). None by default.
    #[serde(default)]
    pub history: Vec<crate::history::HistoryRule>,
    /// Most bytes of history kept for the app over all its channels (the
    /// app's oldest events are dropped first).
    #[serde(default = "default_history_max_bytes")]
    pub history_max_bytes: usize,
    /// History reads (`sealcast:history`) per connection per second.
    #[serde(default = "default_history_reads")]
    pub history_reads_per_second: u32,
    /// History reads per second for the whole app, WebSocket and HTTP API
    /// together (bursts of this many): one client cannot keep the store
    /// busy for the others.
    #[serde(default = "default_app_history_reads")]
    pub app_history_reads_per_second: u32,
    /// The key directory's budgets (`[apps.key_directory]`).
    #[serde(default)]
    pub key_directory: crate::directory::KeyDirectoryConfig,
}

fn yes() -> bool {
    true
}
fn default_max_payload() -> usize {
    10 * 1024
}
fn default_client_rate() -> u32 {
    10
}
fn default_presence_members() -> usize {
    100
}
fn default_presence_data() -> usize {
    1024
}
fn default_event_channels() -> usize {
    100
}
fn default_batch_size() -> usize {
    10
}
fn default_doc_rate() -> u32 {
    50
}
fn default_frame_rate() -> u32 {
    200
}
fn default_subscription_rate() -> u32 {
    100
}
fn default_presence_rate() -> u32 {
    10
}
fn default_slow_rate() -> u32 {
    5
}
fn default_join_rate() -> u32 {
    20
}
fn default_snapshot_rate() -> u32 {
    2
}
fn default_other_rate() -> u32 {
    20
}
fn default_strikes() -> u32 {
    50
}
fn default_subscriptions_per_connection() -> usize {
    1000
}
fn default_max_channels() -> usize {
    100_000
}
fn default_webhook_retry_secs() -> u64 {
    300
}
fn default_webhook_queue_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_history_max_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_history_reads() -> u32 {
    10
}
fn default_app_history_reads() -> u32 {
    200
}

impl AppConfig {
    /// An app with the given credentials and default limits.
    pub fn new(id: impl Into<String>, key: impl Into<String>, secret: impl Into<String>) -> AppConfig {
        AppConfig {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            enable_client_messages: true,
            max_connections: 0,
            max_event_payload_bytes: default_max_payload(),
            client_events_per_second: default_client_rate(),
            max_presence_members: default_presence_members(),
            max_presence_data_bytes: default_presence_data(),
            max_event_channels: default_event_channels(),
            max_batch_size: default_batch_size(),
            doc_ops_per_second: default_doc_rate(),
            frames_per_second: default_frame_rate(),
            subscriptions_per_second: default_subscription_rate(),
            presence_changes_per_second: default_presence_rate(),
            signins_per_second: default_slow_rate(),
            pings_per_second: default_slow_rate(),
            doc_joins_per_second: default_join_rate(),
            doc_digests_per_second: default_join_rate(),
            doc_snapshots_per_second: default_snapshot_rate(),
            other_frames_per_second: default_other_rate(),
            rate_limit_strikes: default_strikes(),
            max_subscriptions_per_connection: default_subscriptions_per_connection(),
            max_channels: default_max_channels(),
            jwt_keys: Vec::new(),
            webhooks: Vec::new(),
            require_signin_secs: 0,
            webhook_batching: false,
            webhook_ca_file: None,
            webhook_retry_secs: default_webhook_retry_secs(),
            webhook_max_queue_bytes: default_webhook_queue_bytes(),
            history: Vec::new(),
            history_max_bytes: default_history_max_bytes(),
            history_reads_per_second: default_history_reads(),
            app_history_reads_per_second: default_app_history_reads(),
            key_directory: crate::directory::KeyDirectoryConfig::default(),
        }
    }
}

/// The file schema.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    host: Option<String>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    activity_timeout: Option<u64>,
    pong_timeout: Option<u64>,
    worker_threads: Option<usize>,
    log_format: Option<String>,
    reuse_port: Option<bool>,
    max_outbound_queue: Option<usize>,
    max_frame_bytes: Option<usize>,
    max_outbound_bytes: Option<usize>,
    max_connections: Option<usize>,
    http_header_timeout: Option<u64>,
    http_body_timeout: Option<u64>,
    close_linger_ms: Option<u64>,
    close_linger_bytes: Option<usize>,
    max_http_body_bytes: Option<usize>,
    cluster_outbox_per_app: Option<usize>,
    cluster_resync_interval: Option<u64>,
    http_timestamp_window: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_watch_secs: Option<u64>,
    cluster: Option<String>,
    #[serde(default)]
    documents: crate::docs::DocLimits,
    #[serde(default)]
    history: crate::history::HistorySettings,
    #[serde(default)]
    apps: Vec<AppConfig>,
}

/// Settings given on the command line (they win over everything else).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`
    pub config_file: Option<PathBuf>,
    /// `--host`
    pub host: Option<String>,
    /// `--port`
    pub port: Option<u16>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--cluster`
    pub cluster: Option<String>,
    /// `--log-format`
    pub log_format: Option<LogFormat>,
    /// `--tls-cert`
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`
    pub tls_key: Option<PathBuf>,
}

impl ServerConfig {
    /// Builds the configuration from `overrides`, the environment (through
    /// `env`, so tests need not touch the process environment) and the file.
    pub fn load(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ServerConfig, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let env_u16 = |name: &str| -> Result<Option<u16>, ConfigError> {
            env(name)
                .map(|v| {
                    v.parse().map_err(|_| ConfigError::Invalid(format!("{name}={v:?} is not a port number")))
                })
                .transpose()
        };
        let host = overrides
            .host
            .clone()
            .or_else(|| env("SEALCAST_HOST"))
            .or(file.host)
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = match overrides.port {
            Some(port) => port,
            None => env_u16("SEALCAST_PORT")?.or(file.port).unwrap_or(6001),
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| env("SEALCAST_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("sealcast-data"));

        let cluster = overrides.cluster.clone().or_else(|| env("SEALCAST_CLUSTER")).or(file.cluster);
        let path_of = |flag: &Option<PathBuf>, name: &str, file: Option<PathBuf>| {
            flag.clone().or_else(|| env(name).map(PathBuf::from)).or(file)
        };
        let tls = match (
            path_of(&overrides.tls_cert, "SEALCAST_TLS_CERT", file.tls_cert),
            path_of(&overrides.tls_key, "SEALCAST_TLS_KEY", file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_cert and tls_key must be given together (--tls-cert, --tls-key)".into(),
                ));
            }
        };
        let mut apps = file.apps;
        match (env("SEALCAST_APP_ID"), env("SEALCAST_APP_KEY"), env("SEALCAST_APP_SECRET")) {
            (Some(id), Some(key), Some(secret)) => {
                let mut app = AppConfig::new(id, key, secret);
                // Channels that keep history, comma-separated patterns (one
                // rule with the default bounds; docs/history.md).
                if let Some(patterns) = env("SEALCAST_APP_HISTORY") {
                    let patterns: Vec<&str> = patterns.split(',').map(str::trim).collect();
                    app.history.push(crate::history::HistoryRule::new(&patterns));
                }
                apps.push(app);
            }
            (None, None, None) => {}
            _ => {
                return Err(ConfigError::Invalid(
                    "SEALCAST_APP_ID, SEALCAST_APP_KEY and SEALCAST_APP_SECRET must be set together".into(),
                ));
            }
        }
        let demo_app = apps.is_empty();
        if demo_app {
            let mut demo = AppConfig::new("demo", random_hex(10), random_hex(16));
            // The demo's chats remember what was said while a client was
            // away (docs/history.md).
            demo.history.push(crate::history::HistoryRule::new(&["presence-chat-*", "private-chat-*"]));
            apps.push(demo);
        }
        let config = ServerConfig {
            host,
            port,
            data_dir,
            activity_timeout: Duration::from_secs(file.activity_timeout.unwrap_or(120)),
            pong_timeout: Duration::from_secs(file.pong_timeout.unwrap_or(30)),
            worker_threads: match env("SEALCAST_WORKER_THREADS") {
                Some(text) => text.parse().map_err(|_| {
                    ConfigError::Invalid(format!(
                        "SEALCAST_WORKER_THREADS={text:?} is not a number of threads"
                    ))
                })?,
                None => file.worker_threads.unwrap_or(0),
            },
            log_format: match (overrides.log_format, env("SEALCAST_LOG_FORMAT"), &file.log_format) {
                (Some(format), _, _) => format,
                (None, Some(text), _) => {
                    text.parse().map_err(|why| ConfigError::Invalid(format!("SEALCAST_LOG_FORMAT: {why}")))?
                }
                (None, None, Some(text)) => text.parse().map_err(ConfigError::Invalid)?,
                (None, None, None) => LogFormat::default(),
            },
            reuse_port: match env("SEALCAST_REUSE_PORT").as_deref() {
                Some("1" | "true") => true,
                Some("0" | "false") => false,
                Some(other) => {
                    return Err(ConfigError::Invalid(format!(
                        "SEALCAST_REUSE_PORT={other:?}: expected true or false"
                    )));
                }
                None => file.reuse_port.unwrap_or(false),
            },
            max_outbound_queue: file.max_outbound_queue.unwrap_or(1024),
            max_frame_bytes: file.max_frame_bytes.unwrap_or(256 * 1024),
            max_outbound_bytes: file.max_outbound_bytes.unwrap_or(4 * 1024 * 1024),
            max_connections: file.max_connections.unwrap_or(10_000),
            http_header_timeout: Duration::from_secs(file.http_header_timeout.unwrap_or(10)),
            http_body_timeout: Duration::from_secs(file.http_body_timeout.unwrap_or(10)),
            close_linger: Duration::from_millis(file.close_linger_ms.unwrap_or(1000)),
            close_linger_bytes: file.close_linger_bytes.unwrap_or(1024 * 1024),
            max_http_body_bytes: file.max_http_body_bytes.unwrap_or(1024 * 1024),
            cluster_outbox_per_app: file.cluster_outbox_per_app.unwrap_or(10_000),
            cluster_resync_interval: Duration::from_secs(file.cluster_resync_interval.unwrap_or(15)),
            http_timestamp_window: Duration::from_secs(file.http_timestamp_window.unwrap_or(600)),
            tls,
            tls_watch_interval: Duration::from_secs(file.tls_watch_secs.unwrap_or(10)),
            apps,
            demo_app,
            cluster,
            documents: file.documents,
            history: file.history,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if let Some(url) = &self.cluster
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return invalid(format!("cluster must be a redis:// URL, got {url:?}"));
        }
        if self.worker_threads > 1024 {
            return invalid(format!("worker_threads must be at most 1024, got {}", self.worker_threads));
        }
        if self.activity_timeout.is_zero() || self.pong_timeout.is_zero() {
            return invalid("activity_timeout and pong_timeout must be at least 1 second".into());
        }
        if self.max_outbound_queue == 0 || self.max_frame_bytes < 1024 {
            return invalid("max_outbound_queue must be ≥ 1 and max_frame_bytes ≥ 1024".into());
        }
        // The largest single answer is a join page with a snapshot (which
        // arrived as one client message, so it is at most max_frame_bytes).
        let largest_answer = self.documents.max_join_page_bytes + self.max_frame_bytes + 64 * 1024;
        if self.max_outbound_bytes < largest_answer {
            return invalid(format!(
                "max_outbound_bytes must be at least [documents] max_join_page_bytes + max_frame_bytes + 64 KiB ({largest_answer})"
            ));
        }
        if self.max_connections == 0 || self.max_http_body_bytes == 0 || self.cluster_outbox_per_app == 0 {
            return invalid(
                "max_connections, max_http_body_bytes and cluster_outbox_per_app must be positive".into(),
            );
        }
        if self.cluster_resync_interval.is_zero() {
            return invalid("cluster_resync_interval must be at least 1 second".into());
        }
        if self.close_linger > Duration::from_secs(60) {
            return invalid("close_linger_ms must be at most 60000".into());
        }
        if self.http_header_timeout.is_zero() || self.http_body_timeout.is_zero() {
            return invalid("http_header_timeout and http_body_timeout must be at least 1 second".into());
        }
        if self.tls_watch_interval.is_zero() {
            return invalid("tls_watch_secs must be at least 1 second".into());
        }
        if let Some(files) = &self.tls {
            files.load()?;
        }
        let docs = &self.documents;
        if docs.max_payload_bytes == 0
            || docs.max_snapshot_bytes == 0
            || docs.max_document_bytes == 0
            || docs.max_documents_per_app == 0
            || docs.max_join_page_bytes == 0
            || docs.max_concurrent_requests_per_app == 0
        {
            return invalid("[documents] limits must be positive".into());
        }
        if self.history.max_page_bytes == 0 || self.history.max_page_bytes > self.max_outbound_bytes / 2 {
            return invalid(
                "[history] max_page_bytes must be positive and at most half of max_outbound_bytes".into(),
            );
        }
        let (mut ids, mut keys) = (HashSet::new(), HashSet::new());
        for app in &self.apps {
            if app.id.is_empty() || app.key.is_empty() || app.secret.is_empty() {
                return invalid(format!("app {:?}: id, key and secret must be non-empty", app.id));
            }
            let url_safe = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !url_safe(&app.id) || !url_safe(&app.key) {
                return invalid(format!("app {:?}: id and key may use only A-Z a-z 0-9 - _ .", app.id));
            }
            if !ids.insert(&app.id) || !keys.insert(&app.key) {
                return invalid(format!("app {:?}: app ids and keys must be unique", app.id));
            }
            let rates = [
                app.client_events_per_second,
                app.doc_ops_per_second,
                app.frames_per_second,
                app.subscriptions_per_second,
                app.presence_changes_per_second,
                app.signins_per_second,
                app.pings_per_second,
                app.doc_joins_per_second,
                app.doc_digests_per_second,
                app.doc_snapshots_per_second,
                app.other_frames_per_second,
                app.history_reads_per_second,
                app.app_history_reads_per_second,
                app.key_directory.requests_per_second,
            ];
            if app.max_event_payload_bytes == 0
                || rates.contains(&0)
                || app.max_subscriptions_per_connection == 0
                || app.max_channels == 0
            {
                return invalid(format!("app {:?}: limits and rates must be positive", app.id));
            }
            if let Err(source) = crate::jwt::TokenVerifier::from_config(&app.jwt_keys) {
                return Err(ConfigError::JwtKey { app: app.id.clone(), source });
            }
            if let Some(source) = app.webhooks.iter().find_map(|hook| crate::webhooks::validate(hook).err()) {
                return Err(ConfigError::Webhook { app: app.id.clone(), source });
            }
            if let Err(source) = crate::webhooks::tls_config(app.webhook_ca_file.as_deref()) {
                return Err(ConfigError::Webhook { app: app.id.clone(), source });
            }
            if let Some(problem) = app.history.iter().find_map(|rule| rule.problem()) {
                return invalid(format!("app {:?}: {problem}", app.id));
            }
            // Below one largest event (a client event's data) some events
            // could never be queued.
            if !app.webhooks.is_empty() && app.webhook_max_queue_bytes < app.max_event_payload_bytes + 1024 {
                return invalid(format!(
                    "app {:?}: webhook_max_queue_bytes must hold one event (max_event_payload_bytes + 1 KiB)",
                    app.id
                ));
            }
            if app.history_max_bytes == 0 {
                return invalid(format!("app {:?}: history_max_bytes must be positive", app.id));
            }
            let directory = &app.key_directory;
            if directory.max_package_bytes == 0
                || directory.max_packages_per_device == 0
                || directory.max_devices_per_user == 0
                || directory.max_bytes
                    < directory.max_package_bytes + crate::directory::PACKAGE_OVERHEAD_BYTES
            {
                return invalid(format!(
                    "app {:?}: key_directory limits must be positive and max_bytes must hold one package",
                    app.id
                ));
            }
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text)
        .map_err(|e| ConfigError::Parse { path: path.into(), message: parse_message(&text, &e) })
}

/// The parser's message with its line and column, without the quoted line
/// of the file the parser adds (it may hold an app secret, and a refused
/// reload is logged).
fn parse_message(text: &str, error: &toml::de::Error) -> String {
    let Some(span) = error.span() else { return error.message().to_owned() };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    format!("line {line}, column {column}: {}", error.message())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The demo app is a convenience; if the OS RNG fails, the process
    // cannot do anything secure anyway.
    getrandom::fill(&mut buf).expect("operating system random number generator");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn demo_app_when_nothing_is_configured() {
        let config = ServerConfig::load(&Overrides::default(), env_of(&[])).unwrap();
        assert!(config.demo_app);
        assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 6001));
        assert_eq!(config.apps.len(), 1);
        assert_eq!(config.apps[0].secret.len(), 32);
    }

    #[test]
    fn single_app_from_environment() {
        let env = env_of(&[
            ("SEALCAST_APP_ID", "a1"),
            ("SEALCAST_APP_KEY", "k1"),
            ("SEALCAST_APP_SECRET", "s1"),
            ("SEALCAST_PORT", "7000"),
            ("SEALCAST_HOST", "0.0.0.0"),
            ("SEALCAST_APP_HISTORY", "private-chat-*, cache-x"),
        ]);
        let config = ServerConfig::load(&Overrides::default(), env).unwrap();
        assert!(!config.demo_app);
        assert_eq!((config.apps[0].id.as_str(), config.apps[0].key.as_str()), ("a1", "k1"));
        assert_eq!(
            config.apps[0].history,
            [crate::history::HistoryRule::new(&["private-chat-*", "cache-x"])]
        );
        assert_eq!((config.host.as_str(), config.port), ("0.0.0.0", 7000));
        // Flags win.
        let flags = Overrides { port: Some(7001), ..Overrides::default() };
        assert_eq!(ServerConfig::load(&flags, env_of(&[("SEALCAST_PORT", "7000")])).unwrap().port, 7001);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let partial =
            ServerConfig::load(&Overrides::default(), env_of(&[("SEALCAST_APP_ID", "a")])).unwrap_err();
        assert!(partial.to_string().contains("must be set together"));
        let port =
            ServerConfig::load(&Overrides::default(), env_of(&[("SEALCAST_PORT", "http")])).unwrap_err();
        assert!(port.to_string().contains("not a port number"));
        let threads =
            ServerConfig::load(&Overrides::default(), env_of(&[("SEALCAST_WORKER_THREADS", "two")]))
                .unwrap_err();
        assert!(threads.to_string().contains("not a number of threads"), "{threads}");
        let threads =
            ServerConfig::load(&Overrides::default(), env_of(&[("SEALCAST_WORKER_THREADS", "5000")]))
                .unwrap_err();
        assert!(threads.to_string().contains("at most 1024"), "{threads}");
    }

    #[test]
    fn a_file_that_does_not_parse_is_located_without_quoting_it() {
        let dir = std::env::temp_dir().join(format!("sealcast-config-parse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s3cr3t\n").unwrap();
        let err =
            ServerConfig::load(&Overrides { config_file: Some(path), ..Overrides::default() }, env_of(&[]))
                .unwrap_err()
                .to_string();
        assert!(err.contains("line 4"), "{err}");
        assert!(!err.contains("s3cr3t"), "the file's line was quoted: {err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn key_directory_budgets_parse_and_bad_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("sealcast-config-kd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kd.toml");
        let load = |table: &str| {
            std::fs::write(
                &path,
                format!("[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\n[apps.key_directory]\n{table}"),
            )
            .unwrap();
            ServerConfig::load(
                &Overrides { config_file: Some(path.clone()), ..Overrides::default() },
                env_of(&[]),
            )
        };
        let config = load("max_packages_per_device = 3\n").unwrap();
        let directory = config.apps[0].key_directory;
        assert_eq!(directory.max_packages_per_device, 3);
        assert_eq!(
            directory.max_devices_per_user,
            crate::directory::KeyDirectoryConfig::default().max_devices_per_user
        );
        for bad in
            ["max_packages_per_device = 0\n", "requests_per_second = 0\n", "max_bytes = 100\n", "typo = 1\n"]
        {
            assert!(load(bad).is_err(), "{bad} was accepted");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn worker_threads_and_close_linger_have_defaults() {
        let config = ServerConfig::load(&Overrides::default(), env_of(&[])).unwrap();
        assert_eq!(config.worker_threads, 0);
        assert_eq!(config.close_linger, Duration::from_secs(1));
        assert_eq!(config.close_linger_bytes, 1 << 20);
        let config =
            ServerConfig::load(&Overrides::default(), env_of(&[("SEALCAST_WORKER_THREADS", "1")])).unwrap();
        assert_eq!(config.worker_threads, 1);
    }

    #[test]
    fn file_with_apps_and_limits() {
        let dir = std::env::temp_dir().join(format!("sealcast-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sealcast.toml");
        std::fs::write(
            &path,
            "port = 6100\nactivity_timeout = 30\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nclient_events_per_second = 5\n\
             [[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n",
        )
        .unwrap();
        let config = ServerConfig::load(
            &Overrides { config_file: Some(path.clone()), ..Overrides::default() },
            env_of(&[]),
        )
        .unwrap();
        assert_eq!(config.port, 6100);
        assert_eq!(config.activity_timeout, Duration::from_secs(30));
        assert_eq!(config.apps.len(), 2);
        assert_eq!(config.apps[0].client_events_per_second, 5);
        std::fs::write(&path, "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\ntypo = 1\n").unwrap();
        let err = ServerConfig::load(
            &Overrides { config_file: Some(path.clone()), ..Overrides::default() },
            env_of(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("typo"), "{err}");
        std::fs::write(&path, "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"t\"\n").unwrap();
        let err =
            ServerConfig::load(&Overrides { config_file: Some(path), ..Overrides::default() }, env_of(&[]))
                .unwrap_err();
        assert!(err.to_string().contains("unique"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
