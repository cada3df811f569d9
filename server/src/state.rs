//! [`ServerState`]: what every connection and request shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::app::App;
use crate::app::bus::{Broker, LocalBroker};
use crate::config::ServerConfig;
use crate::docs::{RedisStore, Sequencer, StoreError};
use crate::history::History;
use crate::metrics::Metrics;

/// Apps, configuration and metrics of one server process.
#[derive(Debug)]
pub struct ServerState {
    /// The validated configuration.
    pub config: ServerConfig,
    /// Process-wide metrics.
    pub metrics: Metrics,
    /// Orders and stores document ops.
    pub sequencer: Sequencer,
    /// Carries events and presence to the other nodes (a no-op alone).
    pub bus: Arc<dyn Broker>,

    by_key: HashMap<String, Arc<App>>,
    by_id: HashMap<String, Arc<App>>,
    // Socket ids are "{process prefix}.{counter}": unique per process, and
    // unguessable enough that one client cannot name another's socket id
    // in an auth request by accident.
    socket_prefix: u32,
    socket_counter: AtomicU64,
}

impl ServerState {
    /// State for `config`'s apps, with the document store opened under
    /// the data directory, on a single node.
    pub fn new(config: ServerConfig) -> Result<ServerState, StoreError> {
        ServerState::with_broker(config, Arc::new(LocalBroker::new()))
    }

    /// State over `bus` (the in-process broker, or Redis in cluster mode:
    /// [`crate::boot::start`]).
    pub(crate) fn with_broker(config: ServerConfig, bus: Arc<dyn Broker>) -> Result<ServerState, StoreError> {
        // Documents: the embedded SQLite store alone, the shared Redis in a
        // cluster (one sequence per document across all nodes).
        let sequencer = match &config.cluster {
            Some(url) => Sequencer::new(Arc::new(RedisStore::open(url, config.documents)?), config.documents),
            None => Sequencer::open(&config.data_dir, config.documents)?,
        };
        let history = Arc::new(
            History::open(config.history, &config.data_dir, config.cluster.as_deref())
                .map_err(|err| StoreError::Backend(err.to_string()))?,
        );
        let metrics = Metrics::default();
        let apps: Vec<Arc<App>> = config
            .apps
            .iter()
            .cloned()
            .map(|app| Arc::new(App::new(app, bus.clone(), history.clone(), &metrics)))
            .collect();
        let by_key = apps.iter().map(|app| (app.config.key.clone(), app.clone())).collect();
        let by_id = apps.iter().map(|app| (app.config.id.clone(), app.clone())).collect();
        let mut seed = [0u8; 4];
        // A fixed prefix only makes socket ids guessable, not unsafe: auth
        // signatures still bind them.
        let _ = getrandom::fill(&mut seed);
        Ok(ServerState {
            config,
            metrics,
            sequencer,
            bus,
            by_key,
            by_id,
            socket_prefix: u32::from_le_bytes(seed) % 1_000_000_000,
            socket_counter: AtomicU64::new(1),
        })
    }

    /// The app with WebSocket key `key`.
    pub fn app_by_key(&self, key: &str) -> Option<Arc<App>> {
        self.by_key.get(key).cloned()
    }

    /// The app with HTTP API id `id`.
    pub fn app_by_id(&self, id: &str) -> Option<Arc<App>> {
        self.by_id.get(id).cloned()
    }

    /// Every app.
    pub fn apps(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }

    /// A fresh socket id.
    pub fn next_socket_id(&self) -> String {
        format!("{}.{}", self.socket_prefix, self.socket_counter.fetch_add(1, Ordering::Relaxed))
    }
}
