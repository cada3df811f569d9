//! Webhooks: channel and presence lifecycle events (and, if asked, client
//! events) POSTed to the app's own server, signed like Pusher's.
//!
//! Body: `{"time_ms": …, "events": [{"name": "channel_occupied", "channel": …}, …]}`;
//! headers `X-Pusher-Key` (app key) and `X-Pusher-Signature`
//! (hex HMAC-SHA256 of the body under the app secret). Only event types
//! some endpoint asked for are queued. Events wait in a bounded queue
//! (full ⇒ dropped and counted in `sealcast_webhooks_dropped_total`, never
//! unbounded memory); a `member_removed` is held for
//! [`MEMBER_REMOVED_DELAY`] and cancelled by a `member_added` of the same
//! user (churn is not a leave). Each endpoint has its own delivery task
//! and backlog, so a receiver that is down holds up only itself: a request
//! carries one event (Pusher's default) or, with `webhook_batching`, up to
//! 50 gathered for up to 100 ms, and is retried with exponential backoff
//! (0.5 s doubling, at most 30 s apart) for `webhook_retry_secs` (5 min by
//! default) before it is dropped, logged and counted; events keep their
//! order per endpoint. `http://` and `https://` endpoints (TLS with
//! rustls, the webpki roots plus the app's `webhook_ca_file`). The relay
//! never logs event data; `client_event` hooks carry it to the app's server,
//! which is the party that owns it.
//!
//! In a cluster every node sees its own channel and member changes; which
//! node sends the cluster's webhook is decided by [`HookClaims`] (on Redis:
//! the node whose change made the channel or the user appear or vanish
//! cluster-wide), so each lifecycle webhook is sent once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
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
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::metrics::Counter;

/// Events waiting per app (coalesced, or for the endpoint) at most; beyond
/// it new ones are dropped and counted.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Events in flight from the app to the coalescing task.
const INBOX_CAPACITY: usize = 1024;
const BATCH_MAX: usize = 50;
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// First wait before retrying a request; doubled per failure up to
/// [`RETRY_MAX_DELAY`].
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(500);
/// Longest wait between two attempts.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);
/// Batches waiting for one endpoint at most (while it is down, say);
/// beyond it that endpoint's batches are dropped and counted.
const ENDPOINT_BACKLOG: usize = 256;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One configured endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host[:port]/path` or `https://host[:port]/path`.
    pub url: String,
    /// Which events to send: `channel_occupied`, `channel_vacated`,
    /// `member_added`, `member_removed`, `client_event`. Empty: all but
    /// `client_event`.
    #[serde(default)]
    pub event_types: Vec<String>,
}

/// The kinds of webhook events an endpoint can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `channel_occupied`
    ChannelOccupied,
    /// `channel_vacated`
    ChannelVacated,
    /// `member_added`
    MemberAdded,
    /// `member_removed`
    MemberRemoved,
    /// `client_event`
    ClientEvent,
    /// `cache_miss`
    CacheMiss,
}

impl EventType {
    const ALL: [EventType; 6] = [
        EventType::ChannelOccupied,
        EventType::ChannelVacated,
        EventType::MemberAdded,
        EventType::MemberRemoved,
        EventType::ClientEvent,
        EventType::CacheMiss,
    ];

    /// The name in configs and webhook bodies.
    pub fn name(self) -> &'static str {
        match self {
            EventType::ChannelOccupied => "channel_occupied",
            EventType::ChannelVacated => "channel_vacated",
            EventType::MemberAdded => "member_added",
            EventType::MemberRemoved => "member_removed",
            EventType::ClientEvent => "client_event",
            EventType::CacheMiss => "cache_miss",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The types an endpoint gets: those listed, or all but `client_event`.
    fn mask_of(endpoint: &WebhookConfig) -> u8 {
        let listed = |t: &EventType| endpoint.event_types.iter().any(|name| name == t.name());
        EventType::ALL
            .iter()
            .filter(
                |t| if endpoint.event_types.is_empty() { **t != EventType::ClientEvent } else { listed(t) },
            )
            .fold(0, |mask, t| mask | t.bit())
    }
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
    /// A cache channel had no event for a new subscriber.
    CacheMiss { channel: String },
}

/// What a lifecycle event changes cluster-wide: a channel's or a
/// presence member's set of nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimSubject<'a> {
    /// The nodes where the channel has subscribers.
    Channel(&'a str),
    /// The nodes where the user is in the presence channel.
    Member {
        /// The channel.
        channel: &'a str,
        /// The user.
        user_id: &'a str,
    },
}

/// Decides, in cluster mode, whether this node sends each lifecycle event:
/// a node joining a subject's set sends the "appeared" event only when it
/// is the first node in it, a node leaving sends the "vanished" event only
/// when it was the last (one atomic step per event, so two nodes never
/// both send, nor both skip).
pub trait HookClaims: Send + Sync + std::fmt::Debug {
    /// One answer per event of `events`, in order (events with no
    /// [`HookEvent::claim`] are always this node's). When the claims cannot
    /// be asked, every answer is true: a webhook twice rather than never.
    fn claim<'a>(
        &'a self,
        app: &'a str,
        events: &'a [HookEvent],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<bool>> + Send + 'a>>;
}

impl HookEvent {
    /// Its cluster-wide claim: the subject and whether this node joins it
    /// (true) or leaves it; `None` for events that happen on one node only
    /// (client events, cache misses).
    pub fn claim(&self) -> Option<(ClaimSubject<'_>, bool)> {
        match self {
            HookEvent::ChannelOccupied { channel } => Some((ClaimSubject::Channel(channel), true)),
            HookEvent::ChannelVacated { channel } => Some((ClaimSubject::Channel(channel), false)),
            HookEvent::MemberAdded { channel, user_id } => {
                Some((ClaimSubject::Member { channel, user_id }, true))
            }
            HookEvent::MemberRemoved { channel, user_id } => {
                Some((ClaimSubject::Member { channel, user_id }, false))
            }
            HookEvent::ClientEvent { .. } | HookEvent::CacheMiss { .. } => None,
        }
    }

    /// Roughly what it costs to hold: its strings and a fixed overhead.
    fn size(&self) -> usize {
        const OVERHEAD: usize = 64;
        OVERHEAD
            + match self {
                HookEvent::ChannelOccupied { channel }
                | HookEvent::ChannelVacated { channel }
                | HookEvent::CacheMiss { channel } => channel.len(),
                HookEvent::MemberAdded { channel, user_id }
                | HookEvent::MemberRemoved { channel, user_id } => channel.len() + user_id.len(),
                HookEvent::ClientEvent { channel, event, data, socket_id, user_id } => {
                    channel.len()
                        + event.len()
                        + data.len()
                        + socket_id.len()
                        + user_id.as_ref().map_or(0, String::len)
                }
            }
    }

    /// The event a vanished subject gives (a dead node's leftovers).
    pub fn vanished(subject: ClaimSubject<'_>) -> HookEvent {
        match subject {
            ClaimSubject::Channel(channel) => HookEvent::ChannelVacated { channel: channel.to_owned() },
            ClaimSubject::Member { channel, user_id } => {
                HookEvent::MemberRemoved { channel: channel.to_owned(), user_id: user_id.to_owned() }
            }
        }
    }

    /// Its type.
    pub fn kind(&self) -> EventType {
        match self {
            HookEvent::ChannelOccupied { .. } => EventType::ChannelOccupied,
            HookEvent::ChannelVacated { .. } => EventType::ChannelVacated,
            HookEvent::MemberAdded { .. } => EventType::MemberAdded,
            HookEvent::MemberRemoved { .. } => EventType::MemberRemoved,
            HookEvent::ClientEvent { .. } => EventType::ClientEvent,
            HookEvent::CacheMiss { .. } => EventType::CacheMiss,
        }
    }

    fn name(&self) -> &'static str {
        self.kind().name()
    }

    fn to_json(&self) -> Value {
        match self {
            HookEvent::ChannelOccupied { channel }
            | HookEvent::ChannelVacated { channel }
            | HookEvent::CacheMiss { channel } => {
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

/// Why a webhook was rejected at configuration time (caused by: the
/// operator's config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    /// The URL is not `http(s)://HOST[:PORT]/PATH`.
    #[error("webhook url {0:?} must be http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH")]
    BadUrl(String),
    /// The CA file for https endpoints does not hold a usable PEM
    /// certificate (caused by: the operator's config).
    #[error("webhook_ca_file {path}: {why}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// An event type Pusher does not define.
    #[error("unknown webhook event type {0:?}")]
    UnknownEventType(String),
}

/// The TLS configuration of an app's https endpoints: the webpki roots,
/// plus the certificates in `ca_file` (PEM) when given.
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, WebhookConfigError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let bad = |why: String| WebhookConfigError::CaFile { path: path.display().to_string(), why };
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|err| bad(err.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|err| bad(err.to_string()))?;
        if certificates.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|err| bad(err.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| WebhookConfigError::CaFile { path: "(TLS setup)".into(), why: err.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Checks a webhook's configuration.
pub fn validate(config: &WebhookConfig) -> Result<(), WebhookConfigError> {
    parse_url(&config.url).ok_or_else(|| WebhookConfigError::BadUrl(config.url.clone()))?;
    for kind in &config.event_types {
        if !EventType::ALL.iter().any(|t| t.name() == kind) {
            return Err(WebhookConfigError::UnknownEventType(kind.clone()));
        }
    }
    Ok(())
}

/// Whose webhooks these are: the app's id (for logs), key and secret (the
/// request's headers and signature).
#[derive(Debug, Clone)]
pub struct Sender {
    /// App id.
    pub app_id: String,
    /// App key (`X-Pusher-Key`).
    pub key: String,
    /// App secret (signs the body).
    pub secret: String,
}

/// How an app's webhooks are delivered (its config's `webhook_batching`,
/// `webhook_retry_secs` and `webhook_ca_file`).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Several events per request.
    pub batching: bool,
    /// How long a failing request is retried.
    pub retry_for: Duration,
    /// Whom https endpoints are trusted by ([`tls_config`]); `None`: no
    /// TLS setup could be made, https deliveries fail (logged, counted).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Cluster mode: which node sends each lifecycle event (`None`: this
    /// node sends all it sees).
    pub claims: Option<Arc<dyn HookClaims>>,
    /// Bytes of events waiting at most (`webhook_max_queue_bytes`).
    pub max_queue_bytes: usize,
}

/// The bytes of events an app has waiting, against its budget: taken when
/// an event is queued and for each endpoint copy of a batch, given back
/// when a copy is delivered or dropped.
#[derive(Debug, Default)]
struct QueueBytes {
    used: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl QueueBytes {
    fn take(&self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering;
        if self.used.fetch_add(bytes, Ordering::Relaxed) + bytes > self.max {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Taken whatever the budget says (a batch's copy for one more
    /// endpoint: its events were already admitted).
    fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

fn bytes_of(events: &[HookEvent]) -> usize {
    events.iter().map(HookEvent::size).sum()
}

/// An event on its way to the endpoints.
#[derive(Debug)]
struct Queued {
    event: HookEvent,
    /// The cluster already chose this node to send it (a dead node's
    /// leftovers, [`Webhooks::emit_decided`]): it is not claimed again.
    decided: bool,
}

/// The sending side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Webhooks {
    tx: Option<mpsc::Sender<Queued>>,
    /// The event types some endpoint wants: others are never queued.
    wanted: u8,
    /// Events dropped (`sealcast_webhooks_dropped_total`).
    dropped: Arc<Counter>,
    bytes: Arc<QueueBytes>,
}

impl Webhooks {
    /// No webhooks configured.
    pub fn disabled() -> Webhooks {
        Webhooks { tx: None, wanted: 0, dropped: Arc::default(), bytes: Arc::default() }
    }

    /// Starts the delivery tasks for `app`'s endpoints (needs a tokio
    /// runtime); `dropped` counts what is dropped.
    pub fn start(
        app: Sender,
        endpoints: &[WebhookConfig],
        delivery: Delivery,
        dropped: Arc<Counter>,
    ) -> Webhooks {
        if endpoints.is_empty() {
            return Webhooks::disabled();
        }
        let wanted = endpoints.iter().fold(0, |mask, e| mask | EventType::mask_of(e));
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let (batches_tx, batches) = mpsc::channel(BATCHES_IN_FLIGHT);
        let batch_max = if delivery.batching { BATCH_MAX } else { 1 };
        let bytes = Arc::new(QueueBytes { max: delivery.max_queue_bytes, ..QueueBytes::default() });
        tokio::spawn(coalesce(rx, batches_tx, batch_max, bytes.clone()));
        let policy = Retry { give_up_after: delivery.retry_for };
        let endpoints = endpoints
            .iter()
            .map(|endpoint| {
                let (tx, batches) = mpsc::channel(ENDPOINT_BACKLOG);
                let sender = Endpoint {
                    app: app.clone(),
                    url: endpoint.url.clone(),
                    tls: delivery.tls.clone(),
                    mask: EventType::mask_of(endpoint),
                    policy,
                    dropped: dropped.clone(),
                    bytes: bytes.clone(),
                };
                tokio::spawn(sender.run(batches));
                (EventType::mask_of(endpoint), tx)
            })
            .collect();
        let claims = delivery.claims.map(|claims| (app.app_id.clone(), claims));
        tokio::spawn(distribute(batches, claims, endpoints, dropped.clone(), bytes.clone()));
        Webhooks { tx: Some(tx), wanted, dropped, bytes }
    }

    /// True when some endpoint wants events of `kind` (callers skip
    /// building events nobody wants).
    pub fn wants(&self, kind: EventType) -> bool {
        self.wanted & kind.bit() != 0
    }

    /// Queues an event some endpoint wants; drops it (counted in
    /// `sealcast_webhooks_dropped_total`) when the queue is full.
    pub fn emit(&self, event: HookEvent) {
        self.queue(Queued { event, decided: false });
    }

    /// Queues an event the cluster already chose this node to send (see
    /// [`HookClaims`]): a dead node's channels and members that vanished.
    pub fn emit_decided(&self, event: HookEvent) {
        self.queue(Queued { event, decided: true });
    }

    fn queue(&self, queued: Queued) {
        let Some(tx) = &self.tx else { return };
        if !self.wants(queued.event.kind()) {
            return;
        }
        let size = queued.event.size();
        if !self.bytes.take(size) {
            self.dropped.inc();
            crate::warn_throttled!("webhook queue at webhook_max_queue_bytes: event dropped");
            return;
        }
        if tx.try_send(queued).is_err() {
            self.bytes.give_back(size);
            self.dropped.inc();
        }
    }
}

/// Batches on their way to the endpoints: while they are being posted,
/// new events wait (and coalesce) in [`coalesce`].
const BATCHES_IN_FLIGHT: usize = 2;
/// How long a `member_removed` is held: a `member_added` of the same user
/// and channel within it cancels both (a reconnect or subscription churn
/// is not a leave), as Pusher does.
pub const MEMBER_REMOVED_DELAY: Duration = Duration::from_secs(3);

/// Reads events as they come, cancels join/leave churn, and hands batches
/// of up to `batch_max` to the senders once [`BATCH_WINDOW`] has passed.
/// What waits here is bounded by [`QUEUE_CAPACITY`] (beyond it, dropped).
async fn coalesce(
    mut rx: mpsc::Receiver<Queued>,
    batches: mpsc::Sender<Vec<Queued>>,
    batch_max: usize,
    bytes: Arc<QueueBytes>,
) {
    let mut ready: VecDeque<Queued> = VecDeque::new();
    // Held removals by (channel, user), and their deadlines in order (the
    // delay is constant, so arrival order is deadline order); an entry
    // whose removal was cancelled or re-held is skipped when it comes due.
    let mut held: HashMap<(String, String), Instant> = HashMap::new();
    let mut deadlines: VecDeque<(Instant, (String, String))> = VecDeque::new();
    let mut window_ends: Option<Instant> = None;
    loop {
        let now = Instant::now();
        while deadlines.front().is_some_and(|(at, _)| *at <= now) {
            let Some((at, key)) = deadlines.pop_front() else { break };
            if held.get(&key) == Some(&at) {
                held.remove(&key);
                let (channel, user_id) = key;
                ready.push_back(Queued {
                    event: HookEvent::MemberRemoved { channel, user_id },
                    decided: false,
                });
            }
        }
        if !ready.is_empty() && window_ends.is_none() {
            window_ends = Some(now + BATCH_WINDOW);
        }
        let flush = window_ends.is_some_and(|at| at <= now) || ready.len() >= batch_max;
        if flush && let Ok(permit) = batches.try_reserve() {
            let take = ready.len().min(batch_max);
            permit.send(ready.drain(..take).collect());
            window_ends = (!ready.is_empty()).then(|| now + BATCH_WINDOW);
            continue;
        }
        let next_due = deadlines.front().map(|(at, _)| *at);
        let wake = match (window_ends, next_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // While the sender is busy, poll again shortly rather than spin.
        let wake = if flush { Some(now + BATCH_WINDOW) } else { wake };
        // A full backlog stops reading: the queue then fills and `emit`
        // counts what it drops.
        let room = ready.len() + held.len() < QUEUE_CAPACITY;
        let queued = tokio::select! {
            queued = rx.recv(), if room => match queued {
                Some(queued) => queued,
                None => return,
            },
            () = crate::time::sleep_until(wake) => continue,
        };
        // Churn on this node: a leave held, and cancelled by a join of
        // the same user. (A decided event goes as it is.)
        match queued {
            Queued { event: HookEvent::MemberRemoved { channel, user_id }, decided: false } => {
                let key = (channel, user_id);
                if !held.contains_key(&key) {
                    let at = Instant::now() + MEMBER_REMOVED_DELAY;
                    held.insert(key.clone(), at);
                    deadlines.push_back((at, key));
                }
            }
            Queued { event: HookEvent::MemberAdded { channel, user_id }, decided: false } => {
                let event = HookEvent::MemberAdded { channel, user_id };
                if let HookEvent::MemberAdded { channel, user_id } = &event
                    && held.remove(&(channel.clone(), user_id.clone())).is_some()
                {
                    // The held removal and this join cancel out (same size).
                    bytes.give_back(2 * event.size());
                } else {
                    ready.push_back(Queued { event, decided: false });
                }
            }
            queued => ready.push_back(queued),
        }
    }
}

/// Hands every batch to each endpoint that wants some of it; an endpoint
/// whose backlog is full (down for long) loses the batch, counted.
async fn distribute(
    mut batches: mpsc::Receiver<Vec<Queued>>,
    claims: Option<(String, Arc<dyn HookClaims>)>,
    endpoints: Vec<(u8, mpsc::Sender<Arc<Vec<HookEvent>>>)>,
    dropped: Arc<Counter>,
    bytes: Arc<QueueBytes>,
) {
    while let Some(batch) = batches.recv().await {
        let admitted: usize = batch.iter().map(|queued| queued.event.size()).sum();
        let batch = match &claims {
            Some((app, claims)) => claimed(app, claims.as_ref(), batch).await,
            None => batch.into_iter().map(|queued| queued.event).collect(),
        };
        let size = bytes_of(&batch);
        // What another node sends is no longer held here.
        bytes.give_back(admitted - size);
        if batch.is_empty() {
            continue;
        }
        let batch = Arc::new(batch);
        for (mask, endpoint) in &endpoints {
            let wanted = batch.iter().filter(|e| mask & e.kind().bit() != 0).count();
            if wanted == 0 {
                continue;
            }
            bytes.add(size);
            if endpoint.try_send(batch.clone()).is_err() {
                bytes.give_back(size);
                dropped.add(wanted as u64);
            }
        }
        bytes.give_back(size);
    }
}

/// The events of `batch` this node sends: the decided ones, and those its
/// claims give it.
async fn claimed(app: &str, claims: &dyn HookClaims, batch: Vec<Queued>) -> Vec<HookEvent> {
    // In the batch's order: a decided event where it was, each undecided
    // one where it was if it is this node's.
    let mut slots = Vec::with_capacity(batch.len());
    let mut undecided = Vec::new();
    for queued in batch {
        if queued.decided {
            slots.push(Some(queued.event));
        } else {
            undecided.push(queued.event);
            slots.push(None);
        }
    }
    let verdicts = claims.claim(app, &undecided).await;
    let mut answered = undecided.into_iter().zip(verdicts.into_iter().chain(std::iter::repeat(true)));
    slots
        .into_iter()
        .filter_map(|slot| match slot {
            Some(event) => Some(event),
            None => answered.next().and_then(|(event, mine)| mine.then_some(event)),
        })
        .collect()
}

/// How long a request is retried.
#[derive(Debug, Clone, Copy)]
struct Retry {
    give_up_after: Duration,
}

impl Retry {
    /// The wait before attempt `attempt + 1` (0: after the first failure).
    fn delay(attempt: u32) -> Duration {
        RETRY_FIRST_DELAY.saturating_mul(1 << attempt.min(16)).min(RETRY_MAX_DELAY)
    }
}

/// One endpoint's delivery: its batches in order, each POSTed until it is
/// accepted or the retry policy gives up.
struct Endpoint {
    app: Sender,
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    mask: u8,
    policy: Retry,
    dropped: Arc<Counter>,
    bytes: Arc<QueueBytes>,
}

impl Endpoint {
    async fn run(self, mut batches: mpsc::Receiver<Arc<Vec<HookEvent>>>) {
        while let Some(batch) = batches.recv().await {
            let wanted: Vec<Value> =
                batch.iter().filter(|e| self.mask & e.kind().bit() != 0).map(HookEvent::to_json).collect();
            if !wanted.is_empty() {
                self.post_until_accepted(wanted).await;
            }
            // Delivered or dropped: this endpoint's copy is gone.
            self.bytes.give_back(bytes_of(&batch));
        }
    }

    async fn post_until_accepted(&self, events: Vec<Value>) {
        let count = events.len();
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let body = json!({"time_ms": time_ms, "events": events}).to_string();
        let signature = auth::hmac_hex(&self.app.secret, body.as_bytes());
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let outcome = post(&self.url, self.tls.as_ref(), &self.app.key, &signature, &body).await;
            if let Ok(status) = outcome
                && (200..300).contains(&status)
            {
                debug!(app = %self.app.app_id, events = count, "webhook delivered");
                return;
            }
            let delay = Retry::delay(attempt);
            if started.elapsed() + delay > self.policy.give_up_after {
                warn!(app = %self.app.app_id, url = %self.url, ?outcome, events = count, attempts = attempt + 1,
                    "webhook dropped after retrying for {:?}", started.elapsed());
                self.dropped.add(count as u64);
                return;
            }
            if attempt == 0 {
                warn!(app = %self.app.app_id, url = %self.url, ?outcome, "webhook failed; retrying");
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }
}

/// Why one webhook POST failed (it is retried, then dropped with a
/// warning).
#[derive(Debug, thiserror::Error)]
enum PostError {
    /// Not an `http://host:port/path` URL (config validation prevents it).
    #[error("bad webhook url")]
    BadUrl,
    /// The receiver could not be reached.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// TLS with an https receiver failed (certificate, name, handshake).
    #[error("tls: {0}")]
    Tls(std::io::Error),
    /// The request could not be built.
    #[error("request: {0}")]
    Request(hyper::http::Error),
    /// HTTP failed (handshake or exchange).
    #[error("http: {0}")]
    Http(hyper::Error),
    /// No answer within [`REQUEST_TIMEOUT`].
    #[error("timed out")]
    TimedOut,
}

/// POSTs one batch; returns the HTTP status.
async fn post(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    key: &str,
    signature: &str,
    body: &str,
) -> Result<u16, PostError> {
    let target = parse_url(url).ok_or(PostError::BadUrl)?;
    let request = Request::builder()
        .method("POST")
        .uri(target.path)
        .header(header::HOST, target.authority())
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Pusher-Key", key)
        .header("X-Pusher-Signature", signature)
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(PostError::Request)?;
    let attempt = async {
        let stream = TcpStream::connect((target.host, target.port)).await.map_err(PostError::Connect)?;
        if !target.tls {
            return exchange(stream, request).await;
        }
        let tls = tls.ok_or_else(|| PostError::Tls(std::io::Error::other("no TLS configuration")))?;
        let name = rustls::pki_types::ServerName::try_from(target.host.to_owned())
            .map_err(|err| PostError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, err)))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, stream)
            .await
            .map_err(PostError::Tls)?;
        exchange(stream, request).await
    };
    tokio::time::timeout(REQUEST_TIMEOUT, attempt).await.map_err(|_| PostError::TimedOut)?
}

/// One HTTP/1.1 request over `stream`; the status.
async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> Result<u16, PostError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(PostError::Http)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender.send_request(request).await.map_err(PostError::Http)?;
    Ok(response.status().as_u16())
}

/// Where a webhook goes.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    path: &'a str,
}

impl Target<'_> {
    /// `host:port`, for the Host header.
    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// `http(s)://host[:port][/path]` (ports 80 and 443 by default; no IPv6
/// literals, no user info).
fn parse_url(url: &str) -> Option<Target<'_>> {
    let (tls, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("http://")?),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    (!host.is_empty() && host.bytes().all(plain) && port > 0).then_some(Target { tls, host, port, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let target = |tls, host, port, path| Some(Target { tls, host, port, path });
        assert_eq!(parse_url("http://127.0.0.1:8080/hooks"), target(false, "127.0.0.1", 8080, "/hooks"));
        assert_eq!(parse_url("http://localhost"), target(false, "localhost", 80, "/"));
        assert_eq!(
            parse_url("https://hooks.example.com/p?q=1"),
            target(true, "hooks.example.com", 443, "/p?q=1")
        );
        assert_eq!(parse_url("https://x:8443/"), target(true, "x", 8443, "/"));
        for bad in
            ["http:///x", "ftp://x/", "http://user@x/", "http://[::1]:80/", "http://x:0/", "http://x:99999/"]
        {
            assert_eq!(parse_url(bad), None, "{bad}");
        }
        assert!(
            validate(&WebhookConfig { url: "http://h:1/".into(), event_types: vec!["nope".into()] }).is_err()
        );
    }

    /// With paused time: five events inside one window go as one batch with
    /// batching, and one by one without.
    #[tokio::test(start_paused = true)]
    async fn batching_groups_a_windows_events_and_without_it_each_goes_alone() {
        for (batch_max, expected) in [(BATCH_MAX, vec![5]), (1, vec![1, 1, 1, 1, 1])] {
            let (tx, rx) = mpsc::channel(16);
            let (batches_tx, mut batches) = mpsc::channel(16);
            let task = tokio::spawn(coalesce(rx, batches_tx, batch_max, Arc::default()));
            for n in 0..5 {
                let event = HookEvent::ChannelOccupied { channel: format!("c{n}") };
                tx.send(Queued { event, decided: false }).await.unwrap();
            }
            let mut sizes = Vec::new();
            while sizes.iter().sum::<usize>() < 5 {
                sizes.push(batches.recv().await.unwrap().len());
            }
            assert_eq!(sizes, expected);
            drop(tx);
            task.await.unwrap();
        }
    }

    #[test]
    fn retries_back_off_to_a_ceiling() {
        let delays: Vec<Duration> = (0..8).map(Retry::delay).collect();
        assert_eq!(delays[0], Duration::from_millis(500));
        assert_eq!(delays[3], Duration::from_secs(4));
        assert_eq!(delays[7], RETRY_MAX_DELAY);
    }

    #[test]
    fn event_json() {
        let e = HookEvent::MemberAdded { channel: "presence-a".into(), user_id: "u".into() };
        assert_eq!(e.to_json(), json!({"name": "member_added", "channel": "presence-a", "user_id": "u"}));
    }
}
