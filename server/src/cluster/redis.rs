//! [`RedisBroker`]: nodes meet in one Redis.
//!
//! Keys and channels (docs/scaling.md):
//! - `sealcast:bus:{app}` — pub/sub; each node publishes through one
//!   connection (so its messages keep their order) and pattern-subscribes
//!   to `sealcast:bus:*` on one other connection (RESP3, resubscribed
//!   automatically after a reconnect).
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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushKind, Value};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{Broker, BusMessage, Envelope, NodeEntries, new_node_id};

/// How often a node refreshes its heartbeat key.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// Messages queued for Redis at most; beyond it (Redis slow or away) new
/// ones are dropped with a warning rather than held without bound.
const OUTBOX_MAX: usize = 65_536;
/// How long a heartbeat key lives: a node silent this long is dead.
pub const NODE_TTL: Duration = Duration::from_secs(10);

/// The Redis-backed broker of one node.
#[derive(Debug)]
pub struct RedisBroker {
    node_id: String,
    outbox: mpsc::Sender<Envelope>,
    healthy: Arc<AtomicBool>,
    commands: ConnectionManager,
}

/// A presence entry found in Redis: (app, channel, node, user, info JSON).
pub type PresenceEntry = (String, String, String, String, Option<String>);

fn presence_key(app: &str, channel: &str) -> String {
    format!("sealcast:presence:{app}:{channel}")
}

fn occupancy_key(app: &str, channel: &str) -> String {
    format!("sealcast:occupancy:{app}:{channel}")
}

fn node_key(node: &str) -> String {
    format!("sealcast:node:{node}")
}

impl RedisBroker {
    /// Connects to `url` (RESP3 is requested for the subscriber), starts
    /// publishing, heartbeats and receiving; messages from other nodes are
    /// sent to `inbox`.
    pub async fn start(
        url: &str,
        inbox: mpsc::UnboundedSender<Envelope>,
    ) -> Result<Arc<RedisBroker>, String> {
        let node_id = new_node_id();
        let client = redis::Client::open(url).map_err(|e| format!("cluster URL {url}: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(2));
        let commands = client
            .get_connection_manager_with_config(config.clone())
            .await
            .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;

        let sub_url =
            if url.contains('?') { format!("{url}&protocol=resp3") } else { format!("{url}?protocol=resp3") };
        let sub_client =
            redis::Client::open(sub_url.as_str()).map_err(|e| format!("cluster URL {url}: {e}"))?;
        let (push_tx, mut push_rx) = mpsc::unbounded_channel();
        let sub_config = config.set_push_sender(push_tx).set_automatic_resubscription();
        let mut subscriber = sub_client
            .get_connection_manager_with_config(sub_config)
            .await
            .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
        subscriber.psubscribe("sealcast:bus:*").await.map_err(|e| format!("psubscribe: {e}"))?;

        let healthy = Arc::new(AtomicBool::new(true));
        let (outbox, mut queue) = mpsc::channel::<Envelope>(OUTBOX_MAX);
        let broker =
            Arc::new(RedisBroker { node_id: node_id.clone(), outbox, healthy: healthy.clone(), commands });

        // Receiver: other nodes' messages to the inbox.
        let me = node_id.clone();
        let receiving_health = healthy.clone();
        tokio::spawn(async move {
            let _keep = subscriber; // the connection lives as long as this task
            while let Some(push) = push_rx.recv().await {
                match push.kind {
                    PushKind::PMessage => {
                        let Some(Value::BulkString(payload)) = push.data.get(2) else { continue };
                        match serde_json::from_slice::<Envelope>(payload) {
                            Ok(envelope) if envelope.node != me => {
                                if inbox.send(envelope).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(err) => warn!(error = %err, "undecodable cluster message"),
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

        // Publisher: one connection, one message at a time, in order.
        let mut publisher = broker.commands.clone();
        tokio::spawn(async move {
            while let Some(envelope) = queue.recv().await {
                if let Err(err) = publish(&mut publisher, &envelope).await {
                    warn!(error = %err, app = %envelope.app, "cluster message not delivered to other nodes");
                }
            }
        });

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

    /// Which of `nodes` still have a heartbeat key.
    pub async fn alive(&self, nodes: &[String]) -> Result<Vec<bool>, String> {
        let mut conn = self.commands.clone();
        let mut alive = Vec::with_capacity(nodes.len());
        for node in nodes {
            alive.push(conn.exists::<_, bool>(node_key(node)).await.map_err(|e| e.to_string())?);
        }
        Ok(alive)
    }

    /// Every node's subscription counts: (app, channel, node, count).
    pub async fn occupancy_entries(&self) -> Result<Vec<(String, String, String, usize)>, String> {
        let mut conn = self.commands.clone();
        let mut entries = Vec::new();
        for key in scan(&mut conn, "sealcast:occupancy:*").await? {
            let Some((app, channel)) =
                key.strip_prefix("sealcast:occupancy:").and_then(|r| r.split_once(':'))
            else {
                continue;
            };
            let fields: Vec<(String, usize)> = conn.hgetall(&key).await.map_err(|e| e.to_string())?;
            entries.extend(fields.into_iter().map(|(node, n)| (app.to_owned(), channel.to_owned(), node, n)));
        }
        Ok(entries)
    }

    /// Every presence entry of every node (for a node that starts).
    pub async fn presence_entries(&self) -> Result<Vec<PresenceEntry>, String> {
        let mut conn = self.commands.clone();
        let keys = scan(&mut conn, "sealcast:presence:*").await?;
        let mut entries = Vec::new();
        for key in keys {
            let Some(rest) = key.strip_prefix("sealcast:presence:") else { continue };
            let Some((app, channel)) = rest.split_once(':') else { continue };
            let fields: Vec<(String, String)> = conn.hgetall(&key).await.map_err(|e| e.to_string())?;
            for (field, info) in fields {
                if let Some((node, user)) = field.split_once('|') {
                    let info = (info != "null").then_some(info);
                    entries.push((
                        app.to_owned(),
                        channel.to_owned(),
                        node.to_owned(),
                        user.to_owned(),
                        info,
                    ));
                }
            }
        }
        Ok(entries)
    }

    /// Deletes a dead node's presence entries and subscription counts.
    pub async fn forget(&self, app: &str, node: &str, gone: &NodeEntries) -> Result<(), String> {
        let mut conn = self.commands.clone();
        for (channel, user) in &gone.members {
            conn.hdel::<_, _, ()>(presence_key(app, channel), format!("{node}|{user}"))
                .await
                .map_err(|e| e.to_string())?;
        }
        for channel in &gone.channels {
            conn.hdel::<_, _, ()>(occupancy_key(app, channel), node).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Keys matching `pattern`.
async fn scan(conn: &mut ConnectionManager, pattern: &str) -> Result<Vec<String>, String> {
    let mut iter = conn.scan_match::<_, String>(pattern).await.map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    while let Some(key) = iter.next_item().await {
        keys.push(key.map_err(|e| e.to_string())?);
    }
    Ok(keys)
}

async fn publish(conn: &mut ConnectionManager, envelope: &Envelope) -> redis::RedisResult<()> {
    let presence_field = |user: &str| format!("{}|{user}", envelope.node);
    match &envelope.message {
        BusMessage::MemberJoined { channel, user_id, info } => {
            let info = info.as_deref().unwrap_or("null");
            conn.hset::<_, _, _, ()>(presence_key(&envelope.app, channel), presence_field(user_id), info)
                .await?;
        }
        BusMessage::MemberLeft { channel, user_id } => {
            conn.hdel::<_, _, ()>(presence_key(&envelope.app, channel), presence_field(user_id)).await?;
        }
        BusMessage::Occupancy { channel, subscriptions: 0 } => {
            conn.hdel::<_, _, ()>(occupancy_key(&envelope.app, channel), &envelope.node).await?;
        }
        BusMessage::Occupancy { channel, subscriptions } => {
            conn.hset::<_, _, _, ()>(occupancy_key(&envelope.app, channel), &envelope.node, subscriptions)
                .await?;
        }
        _ => {}
    }
    let payload = serde_json::to_string(envelope).expect("bus messages serialize");
    conn.publish::<_, _, ()>(format!("sealcast:bus:{}", envelope.app), payload).await
}

impl Broker for RedisBroker {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn forward(&self, app: &str, message: BusMessage) {
        let envelope = Envelope { node: self.node_id.clone(), app: app.to_owned(), message };
        if self.outbox.try_send(envelope).is_err() {
            warn!(app, "cluster outbox full (Redis slow or unreachable): message dropped");
        }
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn is_clustered(&self) -> bool {
        true
    }
}
