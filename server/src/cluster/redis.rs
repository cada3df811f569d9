//! [`RedisBroker`]: nodes meet in one Redis.
//!
//! Keys and channels (docs/scaling.md):
//! - `sealcast:bus:{app}` — pub/sub; each node publishes through one
//!   connection (so its messages keep their order) and pattern-subscribes
//!   to `sealcast:bus:*` on one other connection (RESP3, resubscribed
//!   automatically after a reconnect). Kept events (channels with history)
//!   are published by the history store's script instead, and come back
//!   to the node that sent them too (`crate::history`).
//! - `sealcast:node:{node}` — a heartbeat key, set every
//!   [`HEARTBEAT_EVERY`] with a [`NODE_TTL`] expiry: a node whose key is gone
//!   is dead.
//! - `sealcast:presence:{app}:{channel}` — a hash, field `{node}|{user}` →
//!   the user's `user_info` JSON, while that node has a connection of that
//!   user in the channel: what a starting node loads, and what survivors
//!   delete for a dead node.
//! - `sealcast:occupancy:{app}:{channel}` — a hash, field `{node}` → that
//!   node's subscription count (for the cluster-wide HTTP API), loaded and
//!   cleaned up the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushKind, Value};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

use super::hooks::RedisClaims;
use super::presence::{AppCount, AppMember, PresenceStore};
use super::{ClusterError, scan};
use crate::app::bus::{Broker, BusBusy, BusMessage, RoutedMessage, new_node_id};
use crate::app::replica::{LocalMember, NodeCount, NodeEntries, NodeMember};
use crate::warn_throttled;
use crate::webhooks::HookEvent;

/// How often a node refreshes its heartbeat key.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// Messages sent to Redis in one pipelined round trip at most.
const PIPELINE_MAX: usize = 512;
/// Attempts at a pipeline before its messages count as lost.
const PIPELINE_ATTEMPTS: u32 = 3;
/// Messages from other nodes waiting to be applied at most; the Redis push
/// channel in front of it holds as many. Beyond that, messages are dropped
/// (counted) and the periodic resync repairs presence and occupancy.
pub const INBOX_MAX: usize = 65_536;
/// How long a heartbeat key lives: a node silent this long is dead.
pub const NODE_TTL: Duration = Duration::from_secs(10);

/// The Redis-backed broker of one node.
#[derive(Debug)]
pub struct RedisBroker {
    node_id: String,
    /// Unbounded as a channel, bounded by `queued`: each app may have at
    /// most `per_app` messages in it (one app's flood cannot take another
    /// app's room).
    outbox: mpsc::UnboundedSender<RoutedMessage>,
    queued: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    per_app: usize,
    /// Subscription counts not yet published, latest per (app, channel):
    /// churn on one channel costs one message per pipeline, not one per
    /// subscribe.
    occupancy: Mutex<HashMap<(String, String), usize>>,
    wake: Notify,
    healthy: Arc<AtomicBool>,
    commands: ConnectionManager,
    /// Messages lost after they were taken (Redis failed mid-pipeline).
    lost: AtomicUsize,
    /// Messages from other nodes dropped because this node fell behind.
    dropped: Arc<AtomicUsize>,
    /// Which node sends each lifecycle webhook.
    claims: Arc<RedisClaims>,
}

/// `url` with any password replaced by `***` (for logs and errors).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

fn presence_key(app: &str, channel: &str) -> String {
    format!("sealcast:presence:{app}:{channel}")
}

fn occupancy_key(app: &str, channel: &str) -> String {
    format!("sealcast:occupancy:{app}:{channel}")
}

/// The pub/sub channel of `app`'s messages.
fn bus_channel(app: &str) -> String {
    format!("sealcast:bus:{app}")
}

fn node_key(node: &str) -> String {
    format!("sealcast:node:{node}")
}

impl RedisBroker {
    /// Connects to `url` (RESP3 is requested for the subscriber), starts
    /// publishing, heartbeats and receiving; messages from other nodes are
    /// sent to `inbox`. Each app may have `per_app` messages waiting for
    /// Redis.
    pub async fn start(
        url: &str,
        per_app: usize,
        inbox: mpsc::Sender<RoutedMessage>,
    ) -> Result<Arc<RedisBroker>, ClusterError> {
        let node_id = new_node_id();
        let shown = redact_url(url);
        let client = redis::Client::open(url)
            .map_err(|source| ClusterError::InvalidUrl { url: shown.clone(), source })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(2));
        let commands = client
            .get_connection_manager_with_config(config.clone())
            .await
            .map_err(|source| ClusterError::Unreachable { url: shown.clone(), source })?;

        let sub_url =
            if url.contains('?') { format!("{url}&protocol=resp3") } else { format!("{url}?protocol=resp3") };
        let sub_client = redis::Client::open(sub_url.as_str())
            .map_err(|source| ClusterError::InvalidUrl { url: shown.clone(), source })?;
        // The push channel is bounded: when this node falls behind, pushes
        // are dropped (counted) instead of queued without bound.
        let (push_tx, mut push_rx) = mpsc::channel::<redis::PushInfo>(INBOX_MAX);
        let dropped = Arc::new(AtomicUsize::new(0));
        let push_dropped = dropped.clone();
        let push_sender = move |push: redis::PushInfo| -> Result<(), std::convert::Infallible> {
            if push_tx.try_send(push).is_err() {
                push_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        };
        let sub_config = config.set_push_sender(push_sender).set_automatic_resubscription();
        let mut subscriber = sub_client
            .get_connection_manager_with_config(sub_config)
            .await
            .map_err(|source| ClusterError::Unreachable { url: shown.clone(), source })?;
        subscriber.psubscribe("sealcast:bus:*").await?;

        let healthy = Arc::new(AtomicBool::new(true));
        let (outbox, queue) = mpsc::unbounded_channel::<RoutedMessage>();
        let broker = Arc::new(RedisBroker {
            node_id: node_id.clone(),
            outbox,
            queued: Mutex::default(),
            per_app: per_app.max(1),
            occupancy: Mutex::default(),
            wake: Notify::new(),
            healthy: healthy.clone(),
            claims: Arc::new(RedisClaims::new(commands.clone(), &node_id)),
            commands,
            lost: AtomicUsize::new(0),
            dropped,
        });

        // Receiver: other nodes' messages to the inbox.
        let me = node_id.clone();
        let receiving_health = healthy.clone();
        let inbox_dropped = broker.dropped.clone();
        tokio::spawn(async move {
            let _keep = subscriber; // the connection lives as long as this task
            while let Some(push) = push_rx.recv().await {
                match push.kind {
                    PushKind::PMessage => {
                        let Some(Value::BulkString(payload)) = push.data.get(2) else { continue };
                        match serde_json::from_slice::<RoutedMessage>(payload) {
                            // Kept events come back to their own node too
                            // (it delivers them in the bus's order).
                            Ok(routed)
                                if routed.node != me || matches!(routed.message, BusMessage::Kept { .. }) =>
                            {
                                match inbox.try_send(routed) {
                                    Ok(()) => {}
                                    Err(mpsc::error::TrySendError::Full(_)) => {
                                        inbox_dropped.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                                }
                            }
                            Ok(_) => {}
                            Err(err) => warn_throttled!(error = %err, "undecodable cluster message"),
                        }
                    }
                    PushKind::Disconnection => {
                        warn!("lost the Redis subscriber connection; reconnecting");
                        receiving_health.store(false, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });

        // Publisher: one connection, pipelines in order.
        tokio::spawn(broker.clone().publish_loop(queue));

        // Heartbeat: proves this node alive; its success is the health.
        let mut beat = broker.commands.clone();
        let key = node_key(&node_id);
        tokio::spawn(async move {
            let ttl = NODE_TTL.as_millis() as u64;
            loop {
                let ok = beat
                    .set_options::<_, _, ()>(
                        &key,
                        1,
                        redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl)),
                    )
                    .await
                    .is_ok();
                if ok != healthy.swap(ok, Ordering::Relaxed) {
                    if ok {
                        debug!("Redis reachable again");
                    } else {
                        warn!("Redis unreachable: publishes are refused until it is back");
                    }
                }
                tokio::time::sleep(HEARTBEAT_EVERY).await;
            }
        });
        Ok(broker)
    }

    /// Sends what was queued, up to [`PIPELINE_MAX`] messages (and every
    /// pending occupancy count) per round trip, in order.
    async fn publish_loop(self: Arc<RedisBroker>, mut queue: mpsc::UnboundedReceiver<RoutedMessage>) {
        let mut conn = self.commands.clone();
        let mut batch = Vec::with_capacity(PIPELINE_MAX);
        loop {
            tokio::select! {
                biased;
                taken = queue.recv_many(&mut batch, PIPELINE_MAX) => if taken == 0 { return },
                () = self.wake.notified() => {}
            }
            self.release(&batch);
            let occupancy = std::mem::take(&mut *lock(&self.occupancy));
            batch.extend(occupancy.into_iter().map(|((app, channel), subscriptions)| RoutedMessage {
                node: self.node_id.clone(),
                app,
                message: BusMessage::Occupancy { channel, subscriptions },
            }));
            if batch.is_empty() {
                continue;
            }
            let pipe = pipeline(&batch);
            let mut attempt = 1;
            while let Err(err) = pipe.query_async::<()>(&mut conn).await {
                if attempt == PIPELINE_ATTEMPTS {
                    self.lost.fetch_add(batch.len(), Ordering::Relaxed);
                    warn_throttled!(error = %err, messages = batch.len(), "cluster messages lost: Redis failed");
                    break;
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            batch.clear();
        }
    }

    /// Frees the apps' outbox room taken by `batch`.
    fn release(&self, batch: &[RoutedMessage]) {
        let queued = lock(&self.queued);
        for routed in batch {
            if let Some(count) = queued.get(&routed.app) {
                count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// The cluster's presence lives in Redis beside the bus (key layout in
/// the module docs).
impl PresenceStore for RedisBroker {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn forget_hooks(&self, app: &str, node: &str) -> Result<Vec<HookEvent>, ClusterError> {
        self.claims.forget_node(app, node).await
    }

    /// Which of `nodes` still have a heartbeat key.
    async fn alive(&self, nodes: &[String]) -> Result<Vec<bool>, ClusterError> {
        let mut conn = self.commands.clone();
        let mut alive = Vec::with_capacity(nodes.len());
        for node in nodes {
            alive.push(conn.exists::<_, bool>(node_key(node)).await?);
        }
        Ok(alive)
    }

    async fn counts(&self) -> Result<Vec<AppCount>, ClusterError> {
        let mut conn = self.commands.clone();
        let mut entries = Vec::new();
        for key in scan(&mut conn, "sealcast:occupancy:*").await? {
            let Some((app, channel)) =
                key.strip_prefix("sealcast:occupancy:").and_then(|r| r.split_once(':'))
            else {
                continue;
            };
            let fields: Vec<(String, usize)> = conn.hgetall(&key).await?;
            entries.extend(fields.into_iter().map(|(node, subscriptions)| AppCount {
                app: app.to_owned(),
                count: NodeCount { channel: channel.to_owned(), node, subscriptions },
            }));
        }
        Ok(entries)
    }

    async fn members(&self) -> Result<Vec<AppMember>, ClusterError> {
        let mut conn = self.commands.clone();
        let keys = scan(&mut conn, "sealcast:presence:*").await?;
        let mut entries = Vec::new();
        for key in keys {
            let Some(rest) = key.strip_prefix("sealcast:presence:") else { continue };
            let Some((app, channel)) = rest.split_once(':') else { continue };
            let fields: Vec<(String, String)> = conn.hgetall(&key).await?;
            for (field, info) in fields {
                if let Some((node, user)) = field.split_once('|') {
                    let info = (info != "null").then_some(info);
                    let member = NodeMember {
                        channel: channel.to_owned(),
                        node: node.to_owned(),
                        user_id: user.to_owned(),
                        info,
                    };
                    entries.push(AppMember { app: app.to_owned(), member });
                }
            }
        }
        Ok(entries)
    }

    /// Reads every key of the app (cost: one scan per resync).
    async fn rewrite_own(
        &self,
        app: &str,
        members: &[LocalMember],
        occupancy: &[(String, usize)],
    ) -> Result<(), ClusterError> {
        let mut conn = self.commands.clone();
        let mine = format!("{}|", self.node_id);
        let mut pipe = redis::pipe();
        let want: std::collections::HashSet<(&str, &str)> =
            members.iter().map(|m| (m.channel.as_str(), m.user_id.as_str())).collect();
        let prefix = format!("sealcast:presence:{app}:");
        for key in scan(&mut conn, &format!("{prefix}*")).await? {
            let Some(channel) = key.strip_prefix(&prefix) else { continue };
            let fields: Vec<String> = conn.hkeys(&key).await?;
            for field in fields {
                if let Some(user) = field.strip_prefix(&mine)
                    && !want.contains(&(channel, user))
                {
                    pipe.hdel(&key, &field).ignore();
                }
            }
        }
        for LocalMember { channel, user_id, info } in members {
            pipe.hset(
                presence_key(app, channel),
                format!("{mine}{user_id}"),
                info.as_deref().unwrap_or("null"),
            )
            .ignore();
        }
        let counted: std::collections::HashSet<&str> = occupancy.iter().map(|(c, _)| c.as_str()).collect();
        let prefix = format!("sealcast:occupancy:{app}:");
        for key in scan(&mut conn, &format!("{prefix}*")).await? {
            let Some(channel) = key.strip_prefix(&prefix) else { continue };
            if !counted.contains(channel) {
                pipe.hdel(&key, &self.node_id).ignore();
            }
        }
        for (channel, subscriptions) in occupancy {
            pipe.hset(occupancy_key(app, channel), &self.node_id, subscriptions).ignore();
        }
        Ok(pipe.query_async::<()>(&mut conn).await?)
    }

    async fn forget(&self, app: &str, node: &str, entries: &NodeEntries) -> Result<(), ClusterError> {
        let mut conn = self.commands.clone();
        for (channel, user) in &entries.members {
            conn.hdel::<_, _, ()>(presence_key(app, channel), format!("{node}|{user}")).await?;
        }
        for channel in &entries.channels {
            conn.hdel::<_, _, ()>(occupancy_key(app, channel), node).await?;
        }
        Ok(())
    }
}

/// Keys matching `pattern`.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One pipeline for `batch`: each message's presence/occupancy write, then
/// its publish, in order.
fn pipeline(batch: &[RoutedMessage]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for routed in batch {
        let presence_field = |user: &str| format!("{}|{user}", routed.node);
        match &routed.message {
            BusMessage::MemberJoined { channel, user_id, info } => {
                let info = info.as_deref().unwrap_or("null");
                pipe.hset(presence_key(&routed.app, channel), presence_field(user_id), info).ignore();
            }
            BusMessage::MemberLeft { channel, user_id } => {
                pipe.hdel(presence_key(&routed.app, channel), presence_field(user_id)).ignore();
            }
            BusMessage::Occupancy { channel, subscriptions: 0 } => {
                pipe.hdel(occupancy_key(&routed.app, channel), &routed.node).ignore();
            }
            BusMessage::Occupancy { channel, subscriptions } => {
                pipe.hset(occupancy_key(&routed.app, channel), &routed.node, subscriptions).ignore();
            }
            _ => {}
        }
        // Serializing plain strings and integers cannot fail.
        let payload = serde_json::to_string(routed).unwrap_or_default();
        pipe.publish(bus_channel(&routed.app), payload).ignore();
    }
    pipe
}

impl Broker for RedisBroker {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn forward(&self, app: &str, messages: Vec<BusMessage>) -> Result<(), BusBusy> {
        if !self.is_healthy() {
            return Err(BusBusy::Unreachable);
        }
        let (occupancy, messages): (Vec<BusMessage>, Vec<BusMessage>) =
            messages.into_iter().partition(|m| matches!(m, BusMessage::Occupancy { .. }));
        if !messages.is_empty() {
            let count = lock(&self.queued).entry(app.to_owned()).or_default().clone();
            let n = messages.len();
            if count.fetch_add(n, Ordering::Relaxed) + n > self.per_app {
                count.fetch_sub(n, Ordering::Relaxed);
                return Err(BusBusy::Full);
            }
            for message in messages {
                let routed = RoutedMessage { node: self.node_id.clone(), app: app.to_owned(), message };
                if self.outbox.send(routed).is_err() {
                    return Err(BusBusy::Unreachable);
                }
            }
        }
        if !occupancy.is_empty() {
            let mut pending = lock(&self.occupancy);
            for message in occupancy {
                if let BusMessage::Occupancy { channel, subscriptions } = message {
                    pending.insert((app.to_owned(), channel), subscriptions);
                }
            }
            drop(pending);
            self.wake.notify_one();
        }
        Ok(())
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn is_clustered(&self) -> bool {
        true
    }

    fn hook_claims(&self) -> Option<Arc<dyn crate::webhooks::HookClaims>> {
        Some(self.claims.clone())
    }

    fn losses(&self) -> (usize, usize) {
        (self.lost.load(Ordering::Relaxed), self.dropped.load(Ordering::Relaxed))
    }

    fn bus_channel(&self, app: &str) -> Option<String> {
        Some(bus_channel(app))
    }
}
