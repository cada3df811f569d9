//! A cluster node's background work: what ties this process's apps to the
//! bus. The broker (`cluster`) only carries messages; the apps (`hub`) only
//! keep their registries; this module starts the tasks that connect them:
//! loading the presence other nodes already have, applying what they
//! forward, reaping dead nodes, and the periodic resync that repairs
//! whatever a lost message left wrong (docs/scaling.md, "Consistency").

use serde_json::value::RawValue;
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::cluster::{BusMessage, ClusterError, HEARTBEAT_EVERY, RedisBroker, RoutedMessage};
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
pub async fn run(
    state: Arc<ServerState>,
    broker: Arc<RedisBroker>,
    mut inbox: mpsc::Receiver<RoutedMessage>,
) -> Result<(), ClusterError> {
    for (app, channel, node, user, info) in broker.presence_entries().await? {
        if let Some(app) = state.app_by_id(&app) {
            let info = info.and_then(|i| RawValue::from_string(i).ok());
            app.load_remote_member(&channel, &node, &user, info);
        }
    }
    for (app, channel, node, subscriptions) in broker.occupancy_entries().await? {
        if let Some(app) = state.app_by_id(&app) {
            app.on_bus(&node, BusMessage::Occupancy { channel, subscriptions }, &state.metrics);
        }
    }
    let receiver = state.clone();
    tokio::spawn(async move {
        while let Some(routed) = inbox.recv().await {
            if let Some(app) = receiver.app_by_id(&routed.app) {
                app.on_bus(&routed.node, routed.message, &receiver.metrics);
            }
        }
    });
    tokio::spawn(reap(state.clone(), broker.clone()));
    tokio::spawn(resync(state, broker));
    Ok(())
}

async fn reap(state: Arc<ServerState>, broker: Arc<RedisBroker>) {
    loop {
        tokio::time::sleep(HEARTBEAT_EVERY).await;
        for app in state.apps() {
            let nodes: Vec<String> = app.remote_nodes().into_iter().collect();
            if nodes.is_empty() {
                continue;
            }
            let Ok(alive) = broker.alive(&nodes).await else { continue };
            for (node, alive) in nodes.iter().zip(alive) {
                if !alive {
                    tracing::info!(%node, app = %app.config.id, "node gone: removing its presence");
                    let entries = app.node_gone(node, &state.metrics);
                    let (members, channels) = (&entries.members, &entries.channels);
                    if let Err(err) = broker.forget(&app.config.id, node, members, channels).await {
                        tracing::warn!(error = %err, "could not delete a dead node's presence");
                    }
                }
            }
        }
    }
}

async fn resync(state: Arc<ServerState>, broker: Arc<RedisBroker>) {
    let me = broker.node_id_owned();
    loop {
        tokio::time::sleep(state.config.cluster_resync_interval).await;
        // Our own entries first, so the other nodes' next resync reads
        // them right.
        for app in state.apps() {
            let (members, occupancy) = app.local_entries();
            if let Err(err) = broker.rewrite_own(&app.config.id, &members, &occupancy).await {
                tracing::warn!(error = %err, app = %app.config.id, "resync: could not rewrite this node's entries");
            }
        }
        let (presence, occupancy) = match (broker.presence_entries().await, broker.occupancy_entries().await)
        {
            (Ok(presence), Ok(occupancy)) => (presence, occupancy),
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(error = %err, "resync: could not read the cluster's entries");
                continue;
            }
        };
        for app in state.apps() {
            let id = &app.config.id;
            let members = presence
                .iter()
                .filter(|(a, _, node, _, _)| a == id && *node != me)
                .map(|(_, channel, node, user, info)| {
                    (channel.clone(), node.clone(), user.clone(), info.clone())
                })
                .collect();
            let counts = occupancy
                .iter()
                .filter(|(a, _, node, _)| a == id && *node != me)
                .map(|(_, channel, node, n)| (channel.clone(), node.clone(), *n))
                .collect();
            let fixed = app.reconcile_remote(members, counts, &state.metrics);
            if fixed > 0 {
                tracing::info!(app = %id, fixed, "resync repaired presence or occupancy");
            }
        }
    }
}
