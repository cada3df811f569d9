//! [`Sequencer`]: orders a document's ops and persists them before anyone
//! hears of them.
//!
//! One async lock per document spans "append to the store" and "publish to
//! the channel", so subscribers receive ops in sequence order; the store
//! call (an fsync with SQLite) runs on the blocking pool, never on a
//! runtime worker.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{AppendOutcome, DocId, DocLimits, DocStore, Snapshot, SqliteStore, StoreError, StoredOp};

/// Most ops returned by one join (clients page with `since`).
pub const JOIN_PAGE: usize = 1000;

/// Ops kept before the newest snapshot when compacting, so clients a
/// little behind can still catch up with "since" instead of reloading.
pub const HISTORY_KEPT_BEFORE_SNAPSHOT: u64 = 1000;

/// The document sequencer of one server.
pub struct Sequencer {
    store: Arc<dyn DocStore>,
    locks: Mutex<HashMap<DocId, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a joining client receives.
#[derive(Debug)]
pub struct JoinState {
    /// The last sequence number assigned.
    pub head: u64,
    /// The newest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Ops after `since` (or after the snapshot), at most [`JOIN_PAGE`].
    pub ops: Vec<StoredOp>,
    /// The sequence number of the op id the client asked about, if that
    /// op was sequenced (a client rejoining with an op in flight).
    pub op_seq: Option<u64>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer").finish_non_exhaustive()
    }
}

impl Sequencer {
    /// A sequencer over `store`.
    pub fn new(store: Arc<dyn DocStore>) -> Sequencer {
        Sequencer { store, locks: Mutex::default() }
    }

    /// A sequencer over the SQLite database in `data_dir`.
    pub fn open(data_dir: &Path, limits: DocLimits) -> Result<Sequencer, StoreError> {
        Ok(Sequencer::new(Arc::new(SqliteStore::open(&data_dir.join("documents.sqlite3"), limits)?)))
    }

    /// Appends an op by `author` (its user id, when known); `publish(seq)`
    /// runs (still in order) once it is durable.
    pub async fn submit(
        &self,
        id: DocId,
        base: u64,
        op_id: String,
        payload: String,
        author: Option<String>,
        publish: impl FnOnce(u64),
    ) -> Result<AppendOutcome, StoreError> {
        let lock = self.lock_for(&id);
        let guard = lock.lock().await;
        let store = self.store.clone();
        let doc = id.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            store.append(&doc, base, &op_id, &payload, author.as_deref())
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))
        .and_then(|result| result);
        if let Ok(AppendOutcome::Appended(seq)) = outcome {
            publish(seq);
        }
        // Released on every outcome, errors included, so the lock map
        // stays as small as the set of documents being written.
        drop(guard);
        self.release(&id, lock);
        outcome
    }

    /// The state a client needs to (re)join: snapshot and ops after `since`
    /// (default: after the snapshot).
    pub async fn join(
        &self,
        id: DocId,
        since: Option<u64>,
        op_id: Option<String>,
    ) -> Result<JoinState, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let snapshot = store.latest_snapshot(&id)?;
            let since = since.unwrap_or_else(|| snapshot.as_ref().map_or(0, |s| s.seq));
            let ops = store.ops_since(&id, since, JOIN_PAGE)?;
            let op_seq = match op_id {
                Some(op_id) => store.find_op(&id, &op_id)?,
                None => None,
            };
            Ok(JoinState { head: store.head(&id)?, snapshot, ops, op_seq })
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    /// Stores a snapshot, then compacts: payloads more than
    /// [`HISTORY_KEPT_BEFORE_SNAPSHOT`] ops before it are dropped.
    pub async fn snapshot(&self, id: DocId, snapshot: Snapshot) -> Result<(), StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store.put_snapshot(&id, &snapshot)?;
            let upto = snapshot.seq.saturating_sub(HISTORY_KEPT_BEFORE_SNAPSHOT);
            if upto > 0 {
                store.compact(&id, upto)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    fn lock_for(&self, id: &DocId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.clone()).or_default().clone()
    }

    /// Forgets a document's lock when nobody else holds it, so the map stays
    /// as small as the set of documents being written.
    fn release(&self, id: &DocId, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and ours.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(id);
        }
    }
}
