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

use sealcast_core::protocol::doc;

use super::bulk::BulkPool;
use super::slots::Slots;
use sealcast_core::protocol::doc::Join;
use sealcast_sequencer::{JoinState, read_join};

use super::{AppendOutcome, DocId, DocLimits, DocStore, Snapshot, SqliteStore, StoreError};

/// Most ops returned by one join (clients page with `since`).
pub const JOIN_PAGE: usize = doc::JOIN_PAGE_OPS;

/// Threads for joins (as many as one app may have in progress by default:
/// another app's join waits for at most one of them).
const BULK_THREADS: usize = 2;

/// Ops kept before the newest snapshot when compacting, so clients a
/// little behind can still catch up with "since" instead of reloading.
pub const HISTORY_KEPT_BEFORE_SNAPSHOT: u64 = 1000;

/// The document sequencer of one server.
pub struct Sequencer {
    store: Arc<dyn DocStore>,
    /// Joins: bulk reads, on low-priority threads.
    bulk: BulkPool,
    page_bytes: usize,
    /// Per app: joins and snapshot uploads in progress, and joins waiting.
    slots: Arc<Slots>,
    locks: Mutex<HashMap<DocId, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer").finish_non_exhaustive()
    }
}

impl Sequencer {
    /// A sequencer over `store`, answering joins within `limits`.
    pub fn new(store: Arc<dyn DocStore>, limits: DocLimits) -> Sequencer {
        Sequencer {
            store,
            bulk: BulkPool::new(BULK_THREADS),
            page_bytes: limits.max_join_page_bytes,
            slots: Slots::new(limits.max_concurrent_requests_per_app, limits.max_waiting_joins_per_app),
            locks: Mutex::default(),
        }
    }

    /// A sequencer over the SQLite database in `data_dir`.
    pub fn open(data_dir: &Path, limits: DocLimits) -> Result<Sequencer, StoreError> {
        let store = SqliteStore::open(&data_dir.join("documents.sqlite3"), limits)?;
        Ok(Sequencer::new(Arc::new(store), limits))
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

    /// The state a client needs to (re)join (`join`: a snapshot, the newest
    /// or the kept one asked for, the ops after `since`, default after that
    /// snapshot, and the session key hint, recording the join's claim),
    /// handed to `encode` on the same thread: a
    /// low-priority bulk thread (a page is up to a megabyte of JSON; reads
    /// use the store's read side, so no write waits on them). Takes one of
    /// the app's request slots, waiting for it in the app's line in
    /// connection `socket_id`'s turn ([`StoreError::Busy`] when the line is
    /// full). Await it outside a connection's read loop.
    pub async fn join<T: Send + 'static>(
        &self,
        id: DocId,
        socket_id: &str,
        join: Join,
        encode: impl FnOnce(JoinState) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let _slot = self.slots.take_in_turn(&id.app, socket_id).await?;
        let (store, page_bytes) = (self.store.clone(), self.page_bytes);
        let read = self.bulk.run(move || {
            let state = read_join(&*store, &id, (&join).into(), page_bytes)?;
            Ok(encode(state))
        });
        read.await.unwrap_or_else(|| Err(StoreError::Backend("the join failed (bulk thread)".into())))
    }

    /// Stores a snapshot by `uploader` (a user id, or a connection), then
    /// compacts: payloads more than [`HISTORY_KEPT_BEFORE_SNAPSHOT`] ops
    /// before the *oldest* kept snapshot are dropped, so every kept
    /// snapshot can still be joined from (the server cannot tell which
    /// ones open).
    pub async fn snapshot(&self, id: DocId, snapshot: Snapshot, uploader: String) -> Result<(), StoreError> {
        let _slot = self.slots.try_take(&id.app)?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store.put_snapshot(&id, &snapshot, &uploader)?;
            let oldest = store.snapshot_seqs(&id)?.last().copied().unwrap_or(0);
            let upto = oldest.saturating_sub(HISTORY_KEPT_BEFORE_SNAPSHOT);
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
