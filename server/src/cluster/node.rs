//! A cluster node's background work: what ties this process's apps to the
//! bus. The broker (`cluster`) only carries messages; the apps (`app`) only
//! keep their registries; this module starts the tasks that connect them:
//! loading the presence other nodes already have, applying what they
//! forward, reaping dead nodes, and the periodic resync that repairs
//! whatever a lost message left wrong (docs/scaling.md, "Consistency").

use serde_json::value::RawValue;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::presence::{AppCount, AppMember, PresenceStore};
use super::{ClusterError, HEARTBEAT_EVERY};
use crate::app::App;
use crate::app::bus::{BusMessage, RoutedMessage};
use crate::app::replica::{NodeCount, NodeMember};
use crate::metrics::Metrics;
use crate::state::ServerState;

/// Starts the cluster tasks of a node: loads the presence other nodes
/// already have, delivers what they forward, every [`HEARTBEAT_EVERY`]
/// removes the members of nodes whose heartbeat expired (so a dead node's
/// members are gone within [`crate::cluster::NODE_TTL`] +
/// [`HEARTBEAT_EVERY`]), and every `cluster_resync_interval` resyncs: it
/// rewrites its own presence and occupancy in Redis and reconciles its
/// replica of the other nodes' with what Redis holds. A difference is
/// corrected when two resyncs in a row see it (one could be a message still
/// in flight), so a lost update heals within about twice the interval.
pub async fn run<P: PresenceStore>(
    state: Arc<ServerState>,
    store: Arc<P>,
    mut inbox: mpsc::Receiver<RoutedMessage>,
) -> Result<(), ClusterError> {
    load(&state, store.as_ref()).await?;
    let receiver = state.clone();
    tokio::spawn(async move {
        while let Some(routed) = inbox.recv().await {
            if let Some(app) = receiver.app_by_id(&routed.app) {
                app.on_bus(&routed.node, routed.message, &receiver.metrics);
            }
        }
    });
    // The apps as they are at each pass (a config reload may change them).
    let reaper = (state.clone(), store.clone());
    tokio::spawn(async move {
        let (state, store) = reaper;
        loop {
            tokio::time::sleep(HEARTBEAT_EVERY).await;
            reap(&state.apps(), store.as_ref(), &state.metrics).await;
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(state.config.cluster_resync_interval).await;
            resync(&state.apps(), store.as_ref(), &state.metrics).await;
        }
    });
    Ok(())
}

/// Loads the presence and subscription counts the other nodes already
/// have (no events: nobody here has seen a roster yet).
async fn load<P: PresenceStore>(state: &ServerState, store: &P) -> Result<(), ClusterError> {
    for AppMember { app, member } in store.members().await? {
        if let Some(app) = state.app_by_id(&app) {
            let info = member.info.and_then(|i| RawValue::from_string(i).ok());
            app.load_remote_member(&member.channel, &member.node, &member.user_id, info);
        }
    }
    for AppCount { app, count } in store.counts().await? {
        if let Some(app) = state.app_by_id(&app) {
            let NodeCount { channel, node, subscriptions } = count;
            app.on_bus(&node, BusMessage::Occupancy { channel, subscriptions }, &state.metrics);
        }
    }
    Ok(())
}

/// One pass of the reaper: the members and counts of every node whose
/// heartbeat expired are removed (with `member_removed` where the user
/// was nowhere else) and deleted from the store.
pub async fn reap<P: PresenceStore>(apps: &[Arc<App>], store: &P, metrics: &Metrics) {
    for app in apps {
        let nodes: Vec<String> = app.remote_nodes().into_iter().collect();
        if nodes.is_empty() {
            continue;
        }
        let Ok(alive) = store.alive(&nodes).await else { continue };
        for (node, alive) in nodes.iter().zip(alive) {
            if !alive {
                tracing::info!(%node, app = %app.id, "node gone: removing its presence");
                let entries = app.node_gone(node, metrics);
                if let Err(err) = store.forget(&app.id, node, &entries).await {
                    tracing::warn!(error = %err, "could not delete a dead node's presence");
                }
                match store.forget_hooks(&app.id, node).await {
                    Ok(vanished) => vanished.into_iter().for_each(|event| app.webhooks().emit_decided(event)),
                    Err(err) => tracing::warn!(error = %err, "could not clear a dead node's webhook claims"),
                }
            }
        }
    }
}

/// One resync: rewrites this node's own entries in the store, then
/// corrects each app's replica of the other nodes from it (a difference
/// seen by two passes in a row).
pub async fn resync<P: PresenceStore>(apps: &[Arc<App>], store: &P, metrics: &Metrics) {
    // Our own entries first, so the other nodes' next resync reads them
    // right.
    for app in apps {
        let (members, occupancy) = app.local_entries();
        if let Err(err) = store.rewrite_own(&app.id, &members, &occupancy).await {
            tracing::warn!(error = %err, app = %app.id, "resync: could not rewrite this node's entries");
        }
    }
    let (presence, counts) = match (store.members().await, store.counts().await) {
        (Ok(presence), Ok(counts)) => (presence, counts),
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(error = %err, "resync: could not read the cluster's entries");
            return;
        }
    };
    let me = store.node_id();
    for app in apps {
        let id = &app.id;
        let members: Vec<NodeMember> = presence
            .iter()
            .filter(|entry| entry.app == *id && entry.member.node != me)
            .map(|entry| entry.member.clone())
            .collect();
        let counts: Vec<NodeCount> = counts
            .iter()
            .filter(|entry| entry.app == *id && entry.count.node != me)
            .map(|entry| entry.count.clone())
            .collect();
        let fixed = app.reconcile_remote(&members, &counts, metrics);
        if fixed > 0 {
            tracing::info!(app = %id, fixed, "resync repaired presence or occupancy");
        }
    }
}

#[cfg(test)]
mod tests {
    use sealcast_core::protocol::{ChannelName, PresenceMember};

    use super::*;
    use crate::app::bus::LocalBroker;
    use crate::cluster::presence::MemoryPresence;
    use crate::config::AppConfig;
    use crate::ws::outbound::{ConnHandle, QueueLimits};

    const ROOM: &str = "presence-room";

    fn app() -> Arc<App> {
        Arc::new(App::new(
            AppConfig::new("a", "k", "s"),
            Arc::new(LocalBroker::new()),
            Arc::new(crate::history::History::in_memory()),
            &Metrics::default(),
        ))
    }

    fn on(node: &str, user_id: &str) -> NodeMember {
        NodeMember { channel: ROOM.into(), node: node.into(), user_id: user_id.into(), info: None }
    }

    /// Subscribes a socketless connection of `user_id` to the room.
    fn join_here(app: &App, socket_id: &str, user_id: &str) {
        let (handle, _) =
            ConnHandle::new(socket_id.into(), None, QueueLimits { frames: 100, bytes: 1 << 20 });
        assert!(app.connect(handle).is_ok());
        let member = PresenceMember { user_id: user_id.into(), user_info: None };
        app.subscribe(socket_id, &ChannelName::parse(ROOM).unwrap(), Some(member), &Metrics::default())
            .unwrap();
    }

    async fn members_of(store: &MemoryPresence, node: &str) -> Vec<String> {
        let mut users: Vec<String> = store
            .members()
            .await
            .unwrap()
            .into_iter()
            .filter(|entry| entry.member.node == node)
            .map(|entry| entry.member.user_id)
            .collect();
        users.sort();
        users
    }

    #[tokio::test]
    async fn a_resync_writes_our_entries_and_corrects_what_two_passes_see() {
        let (apps, metrics) = ([app()], Metrics::default());
        let store = MemoryPresence::new("node-a");
        join_here(&apps[0], "1.1", "ann");
        // node-b has cy; our replica wrongly has a ghost there instead.
        store.node("node-b").put_member("a", on("node-b", "cy"));
        apps[0].load_remote_member(ROOM, "node-b", "ghost", None);

        resync(&apps, &store, &metrics).await;
        assert_eq!(members_of(&store, "node-a").await, ["ann"], "our own entries are written");
        assert_eq!(apps[0].users(ROOM), ["ann", "ghost"], "one pass only suspects");
        resync(&apps, &store, &metrics).await;
        assert_eq!(apps[0].users(ROOM), ["ann", "cy"]);
    }

    #[tokio::test]
    async fn a_dead_nodes_members_are_removed_here_and_from_the_store() {
        let (apps, metrics) = ([app()], Metrics::default());
        let store = MemoryPresence::new("node-a");
        let b = store.node("node-b");
        b.put_member("a", on("node-b", "bob"));
        apps[0].load_remote_member(ROOM, "node-b", "bob", None);

        reap(&apps, &store, &metrics).await;
        assert_eq!(apps[0].users(ROOM), ["bob"], "node-b is alive");
        store.kill("node-b");
        reap(&apps, &store, &metrics).await;
        assert!(apps[0].users(ROOM).is_empty());
        assert!(members_of(&store, "node-b").await.is_empty());
        assert!(apps[0].remote_nodes().is_empty());
    }
}
