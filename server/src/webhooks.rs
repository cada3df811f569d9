//! Webhooks: channel and presence lifecycle events (and, if asked, client
//! events) POSTed to the app's own server, signed like Pusher's.
//!
//! Body: `{"time_ms": …, "events": [{"name": "channel_occupied", "channel": …}, …]}`;
//! headers `X-Pusher-Key` (app key) and `X-Pusher-Signature`
//! (hex HMAC-SHA256 of the body under the app secret). Events wait in a
//! bounded queue (full ⇒ dropped and counted, never unbounded memory), are
//! batched for up to 100 ms or 50 events, and each batch is retried with
//! backoff (0.5 s, 1 s, 2 s, 4 s) before it is dropped and logged. Only
//! `http://` endpoints (put TLS in front with a local proxy). The relay
//! never logs event data; `client_event` hooks carry it to the app's server,
//! which is the party that owns it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use sealcast_core::protocol::auth;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// Events queued per app before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 10_000;
const BATCH_MAX: usize = 50;
const BATCH_WINDOW: Duration = Duration::from_millis(100);
const RETRY_DELAYS: [Duration; 4] =
    [Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)];
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One configured endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host:port/path`.
    pub url: String,
    /// Which events to send: `channel_occupied`, `channel_vacated`,
    /// `member_added`, `member_removed`, `client_event`. Empty: all but
    /// `client_event`.
    #[serde(default)]
    pub event_types: Vec<String>,
}

/// A webhook event.
#[derive(Debug, Clone)]
pub enum HookEvent {
    /// First subscriber joined.
    ChannelOccupied { channel: String },
    /// Last subscriber left.
    ChannelVacated { channel: String },
    /// A user's first connection joined a presence channel.
    MemberAdded { channel: String, user_id: String },
    /// A user's last connection left a presence channel.
    MemberRemoved { channel: String, user_id: String },
    /// A client event was relayed.
    ClientEvent { channel: String, event: String, data: String, socket_id: String, user_id: Option<String> },
}

impl HookEvent {
    fn name(&self) -> &'static str {
        match self {
            HookEvent::ChannelOccupied { .. } => "channel_occupied",
            HookEvent::ChannelVacated { .. } => "channel_vacated",
            HookEvent::MemberAdded { .. } => "member_added",
            HookEvent::MemberRemoved { .. } => "member_removed",
            HookEvent::ClientEvent { .. } => "client_event",
        }
    }

    fn to_json(&self) -> Value {
        match self {
            HookEvent::ChannelOccupied { channel } | HookEvent::ChannelVacated { channel } => {
                json!({"name": self.name(), "channel": channel})
            }
            HookEvent::MemberAdded { channel, user_id } | HookEvent::MemberRemoved { channel, user_id } => {
                json!({"name": self.name(), "channel": channel, "user_id": user_id})
            }
            HookEvent::ClientEvent { channel, event, data, socket_id, user_id } => {
                let mut value = json!({"name": "client_event", "channel": channel, "event": event, "data": data, "socket_id": socket_id});
                if let Some(user_id) = user_id {
                    value["user_id"] = json!(user_id);
                }
                value
            }
        }
    }
}

/// Why a webhook URL was rejected at configuration time.
pub fn validate(config: &WebhookConfig) -> Result<(), String> {
    parse_url(&config.url)
        .map(|_| ())
        .ok_or_else(|| format!("webhook url {:?} must be http://HOST:PORT/PATH", config.url))?;
    for kind in &config.event_types {
        if !matches!(
            kind.as_str(),
            "channel_occupied" | "channel_vacated" | "member_added" | "member_removed" | "client_event"
        ) {
            return Err(format!("unknown webhook event type {kind:?}"));
        }
    }
    Ok(())
}

/// The sending side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Webhooks {
    tx: Option<mpsc::Sender<HookEvent>>,
    wants_client_events: bool,
}

impl Webhooks {
    /// No webhooks configured.
    pub fn disabled() -> Webhooks {
        Webhooks { tx: None, wants_client_events: false }
    }

    /// Starts the delivery task for an app's endpoints (needs a tokio runtime).
    pub fn start(app_id: String, key: String, secret: String, endpoints: Vec<WebhookConfig>) -> Webhooks {
        if endpoints.is_empty() {
            return Webhooks::disabled();
        }
        let wants_client_events = endpoints.iter().any(|e| e.event_types.iter().any(|t| t == "client_event"));
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(deliver(app_id, key, secret, endpoints, rx));
        Webhooks { tx: Some(tx), wants_client_events }
    }

    /// True when some endpoint wants `client_event` (so callers can skip
    /// copying client event data otherwise).
    pub fn wants_client_events(&self) -> bool {
        self.wants_client_events
    }

    /// Queues an event; drops it (counted) when the queue is full.
    pub fn emit(&self, event: HookEvent, metrics: &Metrics) {
        if let Some(tx) = &self.tx
            && tx.try_send(event).is_err()
        {
            metrics.webhooks_dropped.inc();
        }
    }
}

async fn deliver(
    app_id: String,
    key: String,
    secret: String,
    endpoints: Vec<WebhookConfig>,
    mut rx: mpsc::Receiver<HookEvent>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let window = tokio::time::sleep(BATCH_WINDOW);
        tokio::pin!(window);
        while batch.len() < BATCH_MAX {
            tokio::select! {
                () = &mut window => break,
                next = rx.recv() => match next {
                    Some(event) => batch.push(event),
                    None => break,
                },
            }
        }
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        for endpoint in &endpoints {
            let wanted: Vec<Value> = batch
                .iter()
                .filter(|e| {
                    if endpoint.event_types.is_empty() {
                        !matches!(e, HookEvent::ClientEvent { .. })
                    } else {
                        endpoint.event_types.iter().any(|t| t == e.name())
                    }
                })
                .map(HookEvent::to_json)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let body = json!({"time_ms": time_ms, "events": wanted}).to_string();
            let signature = auth::hmac_hex(&secret, body.as_bytes());
            let mut attempt = 0;
            loop {
                match post(&endpoint.url, &key, &signature, &body).await {
                    Ok(status) if (200..300).contains(&status) => {
                        debug!(app = %app_id, events = wanted.len(), "webhook delivered");
                        break;
                    }
                    outcome => {
                        let Some(delay) = RETRY_DELAYS.get(attempt) else {
                            warn!(app = %app_id, url = %endpoint.url, ?outcome, "webhook dropped after retries");
                            break;
                        };
                        attempt += 1;
                        tokio::time::sleep(*delay).await;
                    }
                }
            }
        }
    }
}

/// POSTs one batch; returns the HTTP status.
async fn post(url: &str, key: &str, signature: &str, body: &str) -> Result<u16, String> {
    let (authority, path) = parse_url(url).ok_or("bad url")?;
    let attempt = async {
        let stream = TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-Pusher-Key", key)
            .header("X-Pusher-Signature", signature)
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, attempt).await.map_err(|_| "timed out".to_string())?
}

/// `http://host[:port]/path` → (`host:port`, `/path`).
fn parse_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!authority.is_empty() && authority.contains(':')).then_some((authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("http://127.0.0.1:8080/hooks"), Some(("127.0.0.1:8080", "/hooks")));
        assert_eq!(parse_url("http://localhost:80"), Some(("localhost:80", "/")));
        assert_eq!(parse_url("https://x:1/"), None);
        assert_eq!(parse_url("http:///x"), None);
        assert!(
            validate(&WebhookConfig { url: "http://h:1/".into(), event_types: vec!["nope".into()] }).is_err()
        );
    }

    #[test]
    fn event_json() {
        let e = HookEvent::MemberAdded { channel: "presence-a".into(), user_id: "u".into() };
        assert_eq!(e.to_json(), json!({"name": "member_added", "channel": "presence-a", "user_id": "u"}));
    }
}
