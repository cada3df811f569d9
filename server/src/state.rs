//! [`ServerState`]: what every connection and request shares.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::app::App;
use crate::app::bus::{Broker, LocalBroker};
use crate::config::{AppConfig, ServerConfig};
use crate::directory::KeyDirectory;
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
    /// Devices' MLS key packages (docs/protocol.md, "Key directory").
    pub key_directory: KeyDirectory,

    /// The apps served (a config reload swaps them: [`ServerState::reload_apps`]).
    apps: RwLock<Apps>,
    history: Arc<History>,
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
        let key_directory = KeyDirectory::open(config.cluster.as_deref())
            .map_err(|err| StoreError::Backend(err.to_string()))?;
        let metrics = Metrics::default();
        let apps: Vec<Arc<App>> = config
            .apps
            .iter()
            .cloned()
            .map(|app| Arc::new(App::new(app, bus.clone(), history.clone(), &metrics)))
            .collect();
        let apps = RwLock::new(Apps::of(apps));
        let mut seed = [0u8; 4];
        // A fixed prefix only makes socket ids guessable, not unsafe: auth
        // signatures still bind them.
        let _ = getrandom::fill(&mut seed);
        Ok(ServerState {
            config,
            metrics,
            sequencer,
            bus,
            key_directory,
            apps,
            history,
            socket_prefix: u32::from_le_bytes(seed) % 1_000_000_000,
            socket_counter: AtomicU64::new(1),
        })
    }

    fn index(&self) -> RwLockReadGuard<'_, Apps> {
        self.apps.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The app with WebSocket key `key`.
    pub fn app_by_key(&self, key: &str) -> Option<Arc<App>> {
        self.index().by_key.get(key).cloned()
    }

    /// The app with HTTP API id `id`.
    pub fn app_by_id(&self, id: &str) -> Option<Arc<App>> {
        self.index().by_id.get(id).cloned()
    }

    /// Every app, as they are now.
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.index().by_id.values().cloned().collect()
    }

    /// Serves `apps` from now on (a config reload; they passed the
    /// config's validation): a new id is a new app, a known id with a
    /// changed config is reconfigured in place (its connections stay:
    /// [`App::reconfigure`]), a missing id is removed and its connections
    /// are closed with 4001 (the Pusher code for an unknown app; clients do
    /// not retry it).
    pub fn reload_apps(&self, apps: Vec<AppConfig>) -> AppsReloaded {
        let mut outcome = AppsReloaded::default();
        let mut index = self.apps.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = Vec::with_capacity(apps.len());
        for config in apps {
            match index.by_id.get(&config.id) {
                Some(app) if *app.config() == config => next.push(app.clone()),
                Some(app) => {
                    app.reconfigure(config, &self.metrics);
                    outcome.changed.push(app.id.clone());
                    next.push(app.clone());
                }
                None => {
                    outcome.added.push(config.id.clone());
                    next.push(Arc::new(App::new(
                        config,
                        self.bus.clone(),
                        self.history.clone(),
                        &self.metrics,
                    )));
                }
            }
        }
        let kept: HashSet<&str> = next.iter().map(|app| app.id.as_str()).collect();
        let removed: Vec<Arc<App>> =
            index.by_id.values().filter(|app| !kept.contains(app.id.as_str())).cloned().collect();
        *index = Apps::of(next);
        drop(index);
        for app in removed {
            app.retire();
            outcome.removed.push(app.id.clone());
        }
        outcome
    }

    /// A fresh socket id.
    pub fn next_socket_id(&self) -> String {
        format!("{}.{}", self.socket_prefix, self.socket_counter.fetch_add(1, Ordering::Relaxed))
    }
}

/// The apps by WebSocket key and by HTTP API id.
#[derive(Debug, Default)]
struct Apps {
    by_key: HashMap<String, Arc<App>>,
    by_id: HashMap<String, Arc<App>>,
}

impl Apps {
    fn of(apps: Vec<Arc<App>>) -> Apps {
        let by_key = apps.iter().map(|app| (app.config().key.clone(), app.clone())).collect();
        let by_id = apps.into_iter().map(|app| (app.id.clone(), app)).collect();
        Apps { by_key, by_id }
    }
}

/// What a [`ServerState::reload_apps`] did, by app id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppsReloaded {
    /// New apps.
    pub added: Vec<String>,
    /// Apps whose configuration changed.
    pub changed: Vec<String>,
    /// Apps no longer served (their connections closed with 4001).
    pub removed: Vec<String>,
}
