//! Starting a server process: its shared state and, in cluster mode, the
//! Redis broker and the node's tasks. The one place that wires the parts
//! together, so that none of them imports another to start it.

use std::sync::Arc;

use crate::cluster::{ClusterError, RedisBroker};
use crate::config::ServerConfig;
use crate::docs::StoreError;
use crate::state::ServerState;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The document store (data directory, SQLite or Redis) could not be
    /// opened (caused by: environment or config).
    #[error("document store: {0}")]
    Store(#[from] StoreError),
    /// The cluster connection failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// [`ServerState::new`], or in cluster mode connected to the other
/// nodes through Redis (the tasks that receive their messages and reap
/// dead nodes are started here).
pub async fn start(config: ServerConfig) -> Result<Arc<ServerState>, StartupError> {
    let Some(url) = config.cluster.clone() else {
        return Ok(Arc::new(ServerState::new(config)?));
    };
    let (inbox, messages) = tokio::sync::mpsc::channel(crate::cluster::INBOX_MAX);
    let broker = RedisBroker::start(&url, config.cluster_outbox_per_app, inbox).await?;
    let state = Arc::new(ServerState::with_broker(config, broker.clone())?);
    crate::cluster::node::run(state.clone(), broker, messages).await?;
    Ok(state)
}
