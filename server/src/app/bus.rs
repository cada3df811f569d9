//! The bus between nodes, as the apps see it: what one node tells the
//! others ([`BusMessage`], routed as a [`RoutedMessage`]) and the
//! [`Broker`] that carries it — in-process for a single node
//! ([`LocalBroker`], the default) or Redis pub/sub for many
//! ([`crate::cluster::RedisBroker`]). The broker knows nothing of apps or
//! connections: `cluster::node` starts the tasks that apply what it
//! carries.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

/// What nodes tell each other (kept events: what the history store
/// publishes for every node, see [`BusMessage::Kept`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BusMessage {
    /// An encoded frame for every subscriber of `channel` (the origin node
    /// already delivered it to its own).
    Event {
        /// Channel name.
        channel: String,
        /// The frame as sent to clients.
        frame: String,
        /// A socket not to deliver to (its author, or the HTTP API's
        /// `socket_id`), which may be on any node.
        except: Option<String>,
        /// What that socket gets instead, on a channel with history (the
        /// position it skips).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
    },
    /// A kept event (a channel with history, cluster mode), published by
    /// the history store's script in the order it kept events: every node,
    /// the sending one too, delivers it from the bus, so every subscriber
    /// sees one order. Fields as [`BusMessage::Event`].
    Kept {
        /// Channel name.
        channel: String,
        /// The frame, with its position.
        frame: String,
        /// A socket not to deliver to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        /// What that socket gets instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
    },
    /// The first connection of `user_id` on the sending node joined a
    /// presence channel.
    MemberJoined {
        /// Channel name.
        channel: String,
        /// The user.
        user_id: String,
        /// Their `user_info` as JSON text (a raw value cannot travel in
        /// an internally tagged enum).
        info: Option<String>,
    },
    /// The last connection of `user_id` on the sending node left.
    MemberLeft {
        /// Channel name.
        channel: String,
        /// The user.
        user_id: String,
    },
    /// The sending node's number of subscriptions to `channel` (0: none).
    Occupancy {
        /// Channel name.
        channel: String,
        /// Subscriptions on the sending node.
        subscriptions: usize,
    },
    /// Close every connection of `user_id` (HTTP `terminate_connections`).
    Terminate {
        /// The user.
        user_id: String,
    },
}

/// A [`BusMessage`] with the node it comes from and the app it is for:
/// what travels on the bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutedMessage {
    /// The sending node.
    pub node: String,
    /// The app.
    pub app: String,
    /// What.
    pub message: BusMessage,
}

/// Why the bus did not take a message: the caller refuses the request
/// (HTTP 503, `pusher:error`) instead of answering and then dropping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BusBusy {
    /// Redis cannot be reached.
    #[error("cluster broker unreachable")]
    Unreachable,
    /// The app's share of the outbox is full (Redis is slower than the
    /// app's publishers).
    #[error("cluster bus busy for this app")]
    Full,
}

/// Carries [`BusMessage`]s to the other nodes.
pub trait Broker: Send + Sync + Debug {
    /// This node's id (random per process).
    fn node_id(&self) -> &str;
    /// Queues `messages` for the other nodes, in order: all of them, or
    /// (refused) none.
    fn forward(&self, app: &str, messages: Vec<BusMessage>) -> Result<(), BusBusy>;
    /// False while the other nodes cannot be reached (publishes are then
    /// refused and the node reports not ready).
    fn is_healthy(&self) -> bool;
    /// True in cluster mode.
    fn is_clustered(&self) -> bool;
    /// Messages lost after the bus took them, and messages from other nodes
    /// dropped because this node fell behind.
    fn losses(&self) -> (usize, usize) {
        (0, 0)
    }
    /// The pub/sub channel `app`'s messages travel on, for a store that
    /// publishes kept events itself (`None`: a single node).
    fn bus_channel(&self, _app: &str) -> Option<String> {
        None
    }
    /// Which node sends each lifecycle webhook (`None`: a single node sends
    /// what it sees).
    fn hook_claims(&self) -> Option<std::sync::Arc<dyn crate::webhooks::HookClaims>> {
        None
    }
}

/// The single-node broker: there is nobody to tell.
#[derive(Debug)]
pub struct LocalBroker {
    node_id: String,
}

impl LocalBroker {
    /// A broker for a node alone.
    pub fn new() -> LocalBroker {
        LocalBroker { node_id: new_node_id() }
    }
}

impl Default for LocalBroker {
    fn default() -> LocalBroker {
        LocalBroker::new()
    }
}

impl Broker for LocalBroker {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn forward(&self, _app: &str, _messages: Vec<BusMessage>) -> Result<(), BusBusy> {
        Ok(())
    }

    fn is_healthy(&self) -> bool {
        true
    }

    fn is_clustered(&self) -> bool {
        false
    }
}

/// A random node id (16 hex digits).
pub fn new_node_id() -> String {
    let mut bytes = [0u8; 8];
    // A fixed id would only matter if two nodes started with the same one.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
