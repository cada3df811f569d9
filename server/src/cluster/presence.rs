//! Where the cluster keeps every node's presence members and subscription
//! counts, behind one contract ([`PresenceStore`]): Redis in cluster mode
//! ([`crate::cluster::RedisBroker`]), or [`MemoryPresence`] in one
//! process, so the node's tasks (loading, reaping dead nodes, the resync)
//! can be tested without a redis-server.
//!
//! The store is the resync's source of truth: each node rewrites its own
//! entries in it and corrects its replica of the others from it
//! ([`crate::app::replica`]).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use super::ClusterError;
use crate::app::replica::{LocalMember, NodeCount, NodeEntries, NodeMember};

/// A presence member of one app, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMember {
    /// The app id.
    pub app: String,
    /// The member and its node.
    pub member: NodeMember,
}

/// A subscription count of one app, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCount {
    /// The app id.
    pub app: String,
    /// The count and its node.
    pub count: NodeCount,
}

/// Every node's presence and subscription counts, shared by the cluster.
/// The futures are `Send` so the node's tasks can run on any worker.
pub trait PresenceStore: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> &str;

    /// Every presence member of every node and app.
    fn members(&self) -> impl Future<Output = Result<Vec<AppMember>, ClusterError>> + Send;

    /// Every subscription count of every node and app.
    fn counts(&self) -> impl Future<Output = Result<Vec<AppCount>, ClusterError>> + Send;

    /// Whether each of `nodes` is alive (its heartbeat has not expired).
    fn alive(&self, nodes: &[String]) -> impl Future<Output = Result<Vec<bool>, ClusterError>> + Send;

    /// Makes the store hold exactly this node's `members` and `counts`
    /// (channel, subscriptions) for `app`: entries a lost message left
    /// behind are deleted, missing ones written.
    fn rewrite_own(
        &self,
        app: &str,
        members: &[LocalMember],
        counts: &[(String, usize)],
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Takes dead `node` out of `app`'s webhook claims: the webhooks its
    /// channels and members that vanished with it owe, for this node to
    /// send (see [`crate::cluster::hooks`]; none by default).
    fn forget_hooks(
        &self,
        _app: &str,
        _node: &str,
    ) -> impl Future<Output = Result<Vec<crate::webhooks::HookEvent>, ClusterError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Deletes what dead `node` left behind in `app`.
    fn forget(
        &self,
        app: &str,
        node: &str,
        entries: &NodeEntries,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
}

/// The shared contents of [`MemoryPresence`] stores: (app, channel,
/// node, user) → info; (app, channel, node) → count; the live nodes.
#[derive(Debug, Default)]
struct Shared {
    members: HashMap<(String, String, String, String), Option<String>>,
    counts: HashMap<(String, String, String), usize>,
    alive: HashSet<String>,
}

/// An in-process [`PresenceStore`]: several nodes in one process (tests)
/// share it through [`MemoryPresence::node`].
#[derive(Debug, Clone)]
pub struct MemoryPresence {
    node_id: String,
    shared: Arc<Mutex<Shared>>,
}

impl MemoryPresence {
    /// An empty store, seen from node `node_id` (alive).
    pub fn new(node_id: &str) -> MemoryPresence {
        let store = MemoryPresence { node_id: node_id.to_owned(), shared: Arc::default() };
        store.lock().alive.insert(node_id.to_owned());
        store
    }

    /// The same store seen from node `node_id` (alive).
    pub fn node(&self, node_id: &str) -> MemoryPresence {
        self.lock().alive.insert(node_id.to_owned());
        MemoryPresence { node_id: node_id.to_owned(), shared: self.shared.clone() }
    }

    /// Node `node_id`'s heartbeat expires.
    pub fn kill(&self, node_id: &str) {
        self.lock().alive.remove(node_id);
    }

    /// Writes an entry as node `node` would (or as a lost message left it).
    pub fn put_member(&self, app: &str, member: NodeMember) {
        let NodeMember { channel, node, user_id, info } = member;
        self.lock().members.insert((app.to_owned(), channel, node, user_id), info);
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding it leaves plain maps: still usable.
        self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PresenceStore for MemoryPresence {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn members(&self) -> Result<Vec<AppMember>, ClusterError> {
        let shared = self.lock();
        Ok(shared
            .members
            .iter()
            .map(|((app, channel, node, user_id), info)| AppMember {
                app: app.clone(),
                member: NodeMember {
                    channel: channel.clone(),
                    node: node.clone(),
                    user_id: user_id.clone(),
                    info: info.clone(),
                },
            })
            .collect())
    }

    async fn counts(&self) -> Result<Vec<AppCount>, ClusterError> {
        let shared = self.lock();
        Ok(shared
            .counts
            .iter()
            .map(|((app, channel, node), subscriptions)| AppCount {
                app: app.clone(),
                count: NodeCount {
                    channel: channel.clone(),
                    node: node.clone(),
                    subscriptions: *subscriptions,
                },
            })
            .collect())
    }

    async fn alive(&self, nodes: &[String]) -> Result<Vec<bool>, ClusterError> {
        let shared = self.lock();
        Ok(nodes.iter().map(|node| shared.alive.contains(node)).collect())
    }

    async fn rewrite_own(
        &self,
        app: &str,
        members: &[LocalMember],
        counts: &[(String, usize)],
    ) -> Result<(), ClusterError> {
        let me = self.node_id.as_str();
        let mut shared = self.lock();
        shared.members.retain(|(a, _, node, _), _| !(a == app && node == me));
        shared.counts.retain(|(a, _, node), _| !(a == app && node == me));
        for member in members {
            let key = (app.to_owned(), member.channel.clone(), me.to_owned(), member.user_id.clone());
            shared.members.insert(key, member.info.clone());
        }
        for (channel, subscriptions) in counts.iter().filter(|(_, n)| *n > 0) {
            shared.counts.insert((app.to_owned(), channel.clone(), me.to_owned()), *subscriptions);
        }
        Ok(())
    }

    async fn forget(&self, app: &str, node: &str, entries: &NodeEntries) -> Result<(), ClusterError> {
        let mut shared = self.lock();
        for (channel, user_id) in &entries.members {
            shared.members.remove(&(app.to_owned(), channel.clone(), node.to_owned(), user_id.clone()));
        }
        for channel in &entries.channels {
            shared.counts.remove(&(app.to_owned(), channel.clone(), node.to_owned()));
        }
        Ok(())
    }
}
