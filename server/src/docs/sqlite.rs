//! [`SqliteStore`]: the embedded [`DocStore`], one SQLite file under the
//! data directory.
//!
//! WAL journal with `synchronous = FULL`: a commit is on disk (fsynced)
//! when `append` returns, so an acknowledged op survives `kill -9` and power
//! loss. Sequence numbers are assigned inside an immediate transaction, so
//! two appends to one document can never share a number.
//!
//! Group commit: appends queue up while the connection is busy, and
//! whoever takes the connection next commits everything queued in one
//! transaction (one fsync), each append in its own savepoint so one
//! refusal does not affect the others. Under load from many documents this
//! turns N fsyncs into one without weakening "durable before acked".
//!
//! Reads (joins) use a second connection: in WAL mode it sees every
//! committed op while the writer keeps appending, so a large join does not
//! hold up another document's ops.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, mpsc};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{AppendOutcome, DocId, DocLimits, DocStore, Page, Snapshot, StoreError, StoredOp};
use sealcast_sequencer::policy::{
    APP_QUOTA_REACHED, OP_OVERHEAD_BYTES, SNAPSHOT_LAG_MAX, TOMBSTONES_KEPT, check_base, check_payload,
    check_snapshot, is_resubmission, newest_first, op_cost, place_snapshot,
};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS docs (
        app TEXT NOT NULL, doc TEXT NOT NULL,
        head INTEGER NOT NULL DEFAULT 0,
        floor INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, doc)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS ops (
        app TEXT NOT NULL, doc TEXT NOT NULL, seq INTEGER NOT NULL,
        base INTEGER NOT NULL, op_id TEXT NOT NULL, payload TEXT NOT NULL,
        PRIMARY KEY (app, doc, seq)) WITHOUT ROWID;
    CREATE UNIQUE INDEX IF NOT EXISTS ops_by_op_id ON ops (app, doc, op_id);
    CREATE TABLE IF NOT EXISTS snapshots (
        app TEXT NOT NULL, doc TEXT NOT NULL, seq INTEGER NOT NULL,
        payload TEXT NOT NULL, key_hint TEXT,
        PRIMARY KEY (app, doc)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS doc_snapshots (
        app TEXT NOT NULL, doc TEXT NOT NULL, uploader TEXT NOT NULL, seq INTEGER NOT NULL,
        payload TEXT NOT NULL, key_hint TEXT,
        PRIMARY KEY (app, doc, uploader)) WITHOUT ROWID;
    -- One snapshot per document from before snapshots were kept per
    -- uploader: it becomes the slot of an unnamed uploader.
    INSERT OR IGNORE INTO doc_snapshots SELECT app, doc, '', seq, payload, key_hint FROM snapshots;
    DELETE FROM snapshots;
";

/// Documents in a SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    limits: DocLimits,
    conn: Mutex<Connection>,
    /// A second connection for reads (joins): in WAL mode it reads the
    /// committed state while the writer appends, so a large join never
    /// holds up another document's (or app's) ops.
    reader: Mutex<Connection>,
    /// Appends waiting for the next group commit.
    queue: Mutex<Vec<QueuedAppend>>,
}

#[derive(Debug)]
struct QueuedAppend {
    id: DocId,
    base: u64,
    op_id: String,
    payload: String,
    author: Option<String>,
    reply: mpsc::Sender<Result<AppendOutcome, StoreError>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, limits: DocLimits) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| backend(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| backend(&e))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| backend(&e))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| backend(&e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| backend(&e))?;
        conn.execute_batch(SCHEMA).map_err(|e| backend(&e))?;
        // Databases from before op authors were stored gain the column
        // (existing ops have no author: only identical bytes match them),
        // and from before session key hints were recorded theirs (existing
        // documents have none).
        add_column(&conn, "ops", "author").map_err(|e| backend(&e))?;
        add_column(&conn, "docs", "key_hint").map_err(|e| backend(&e))?;
        let reader = Connection::open(path).map_err(|e| backend(&e))?;
        reader.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| backend(&e))?;
        Ok(SqliteStore {
            limits,
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            queue: Mutex::default(),
        })
    }

    /// Commits `batch` in one transaction and answers each append.
    fn commit_batch(&self, conn: &mut Connection, batch: Vec<QueuedAppend>) {
        let mut results = Vec::with_capacity(batch.len());
        let committed = (|| {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for append in &batch {
                let mut savepoint = tx.savepoint()?;
                let result = append_in(&savepoint, &self.limits, append);
                if result.is_ok() {
                    savepoint.commit()?;
                } else {
                    savepoint.rollback()?;
                }
                results.push(result);
            }
            tx.commit()
        })();
        if let Err(err) = committed {
            results = batch.iter().map(|_| Err(backend(&err))).collect();
        }
        for (append, result) in batch.into_iter().zip(results) {
            // The caller waits on the other end; it cannot have gone.
            let _ = append.reply.send(result);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Adds TEXT column `column` to `table` unless it has it.
fn add_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        params![table, column],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} TEXT"))?;
    }
    Ok(())
}

/// One append inside the current transaction (see the module contract).
fn append_in(
    conn: &Connection,
    limits: &DocLimits,
    append: &QueuedAppend,
) -> Result<AppendOutcome, StoreError> {
    let QueuedAppend { id, base, op_id, payload, author, .. } = append;
    let existing = conn
        .query_row(
            "SELECT seq, author, base = ?4 AND payload = ?5 FROM ops WHERE app = ?1 AND doc = ?2 AND op_id = ?3",
            params![id.app, id.doc, op_id, int(*base), payload],
            |r| Ok((get_u64(r, 0)?, r.get::<_, Option<String>>(1)?, r.get::<_, bool>(2)?)),
        )
        .optional()
        .map_err(|e| backend(&e))?;
    if let Some((seq, stored_author, same_bytes)) = existing {
        return if is_resubmission(stored_author.as_deref(), author.as_deref(), same_bytes) {
            Ok(AppendOutcome::Duplicate(seq))
        } else {
            Err(StoreError::Conflict { seq })
        };
    }
    let (head, floor, bytes) = doc_row(conn, id).map_err(|e| backend(&e))?;
    if head == 0 && session_hint(conn, id).map_err(|e| backend(&e))?.is_none() {
        check_quota(conn, limits, id)?;
    }
    check_base(*base, floor, head)?;
    let bytes = bytes + op_cost(op_id, payload);
    if bytes > limits.max_document_bytes {
        return Err(StoreError::TooLarge("document history over its size limit: compact with a snapshot"));
    }
    let seq = head + 1;
    conn.execute(
        "INSERT INTO ops (app, doc, seq, base, op_id, payload, author) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id.app, id.doc, int(seq), int(*base), op_id, payload, author],
    )
    .map_err(|e| backend(&e))?;
    conn.execute(
        "INSERT INTO docs (app, doc, head, bytes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (app, doc) DO UPDATE SET head = excluded.head, bytes = excluded.bytes",
        params![id.app, id.doc, int(seq), int(bytes)],
    )
    .map_err(|e| backend(&e))?;
    Ok(AppendOutcome::Appended(seq))
}

/// A new document: within the app's quota? (Counted only when a document
/// is created: by its first op or its session key hint.)
fn check_quota(conn: &Connection, limits: &DocLimits, id: &DocId) -> Result<(), StoreError> {
    let count: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM docs WHERE app = ?1 AND (head > 0 OR key_hint IS NOT NULL)",
            params![id.app],
            |r| r.get(0),
        )
        .map_err(|e| backend(&e))?;
    if u64::try_from(count).unwrap_or(0) >= limits.max_documents_per_app {
        return Err(StoreError::Quota(APP_QUOTA_REACHED));
    }
    Ok(())
}

/// A document's session key hint.
fn session_hint(conn: &Connection, id: &DocId) -> rusqlite::Result<Option<String>> {
    Ok(conn
        .query_row("SELECT key_hint FROM docs WHERE app = ?1 AND doc = ?2", params![id.app, id.doc], |r| {
            r.get(0)
        })
        .optional()?
        .flatten())
}

/// The sequence number given to `op_id`.
fn op_seq(conn: &Connection, id: &DocId, op_id: &str) -> rusqlite::Result<Option<u64>> {
    conn.query_row(
        "SELECT seq FROM ops WHERE app = ?1 AND doc = ?2 AND op_id = ?3",
        params![id.app, id.doc, op_id],
        |r| get_u64(r, 0),
    )
    .optional()
}

/// `(head, floor, bytes)` of a document, zeros when it has none yet.
fn doc_row(conn: &Connection, id: &DocId) -> rusqlite::Result<(u64, u64, u64)> {
    Ok(conn
        .query_row(
            "SELECT head, floor, bytes FROM docs WHERE app = ?1 AND doc = ?2",
            params![id.app, id.doc],
            |r| Ok((get_u64(r, 0)?, get_u64(r, 1)?, get_u64(r, 2)?)),
        )
        .optional()?
        .unwrap_or((0, 0, 0)))
}

impl DocStore for SqliteStore {
    fn append(
        &self,
        id: &DocId,
        base: u64,
        op_id: &str,
        payload: &str,
        author: Option<&str>,
    ) -> Result<AppendOutcome, StoreError> {
        check_payload(&self.limits, payload)?;
        let (reply, answer) = mpsc::channel();
        let append = QueuedAppend {
            id: id.clone(),
            base,
            op_id: op_id.to_owned(),
            payload: payload.to_owned(),
            author: author.map(str::to_owned),
            reply,
        };
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(append);
        {
            // Whoever holds the connection next commits everything queued:
            // by the time we hold it, ours is either done or in this batch.
            let mut conn = self.lock();
            let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
            if !batch.is_empty() {
                self.commit_batch(&mut conn, batch);
            }
        }
        answer.recv().unwrap_or_else(|_| Err(StoreError::Backend("append was not processed".into())))
    }

    fn head(&self, id: &DocId) -> Result<u64, StoreError> {
        doc_row(&self.read(), id).map(|(head, _, _)| head).map_err(|e| backend(&e))
    }

    fn ops_since(&self, id: &DocId, since: u64, page: Page) -> Result<Vec<StoredOp>, StoreError> {
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(
                "SELECT seq, base, op_id, payload, author FROM ops WHERE app = ?1 AND doc = ?2 AND seq > ?3 AND payload != '' ORDER BY seq LIMIT ?4",
            )
            .map_err(|e| backend(&e))?;
        let limit = i64::try_from(page.ops).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(params![id.app, id.doc, int(since), limit], |r| {
                Ok(StoredOp {
                    seq: get_u64(r, 0)?,
                    base: get_u64(r, 1)?,
                    op_id: r.get(2)?,
                    payload: r.get(3)?,
                    author: r.get(4)?,
                })
            })
            .map_err(|e| backend(&e))?;
        // Rows are read lazily: the page stops reading at its byte bound.
        let mut fill = page.fill();
        for row in rows {
            if !fill.push(row.map_err(|e| backend(&e))?) {
                break;
            }
        }
        Ok(fill.ops)
    }

    fn put_snapshot(&self, id: &DocId, snapshot: &Snapshot, uploader: &str) -> Result<(), StoreError> {
        check_snapshot(&self.limits, &snapshot.payload)?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| backend(&e))?;
        let (head, _, _) = doc_row(&tx, id).map_err(|e| backend(&e))?;
        if snapshot.seq > head {
            return Err(StoreError::SnapshotAhead { seq: snapshot.seq, head });
        }
        if head - snapshot.seq > SNAPSHOT_LAG_MAX {
            return Err(StoreError::SnapshotStale { seq: snapshot.seq });
        }
        let seq = int(snapshot.seq);
        let kept: Vec<(String, u64)> = {
            let mut statement = tx
                .prepare_cached("SELECT uploader, seq FROM doc_snapshots WHERE app = ?1 AND doc = ?2")
                .map_err(|e| backend(&e))?;
            let rows = statement
                .query_map(params![id.app, id.doc], |r| Ok((r.get::<_, String>(0)?, get_u64(r, 1)?)))
                .map_err(|e| backend(&e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| backend(&e))?
        };
        let Some(displaced) = place_snapshot(&kept, uploader, snapshot.seq) else { return Ok(()) };
        let stale: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM ops WHERE app = ?1 AND doc = ?2 AND seq > ?3 AND base < ?3)",
                params![id.app, id.doc, seq],
                |r| r.get(0),
            )
            .map_err(|e| backend(&e))?;
        if stale {
            return Err(StoreError::SnapshotStale { seq: snapshot.seq });
        }
        for gone in &displaced {
            tx.execute(
                "DELETE FROM doc_snapshots WHERE app = ?1 AND doc = ?2 AND uploader = ?3",
                params![id.app, id.doc, gone],
            )
            .map_err(|e| backend(&e))?;
        }
        tx.execute(
            "INSERT INTO doc_snapshots (app, doc, uploader, seq, payload, key_hint) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id.app, id.doc, uploader, seq, snapshot.payload, snapshot.key_hint],
        )
        .map_err(|e| backend(&e))?;
        tx.execute(
            "UPDATE docs SET floor = MAX(floor, ?3) WHERE app = ?1 AND doc = ?2",
            params![id.app, id.doc, seq],
        )
        .map_err(|e| backend(&e))?;
        tx.commit().map_err(|e| backend(&e))
    }

    fn snapshot_seqs(&self, id: &DocId) -> Result<Vec<u64>, StoreError> {
        let conn = self.read();
        let mut statement = conn
            .prepare_cached("SELECT seq FROM doc_snapshots WHERE app = ?1 AND doc = ?2")
            .map_err(|e| backend(&e))?;
        let rows =
            statement.query_map(params![id.app, id.doc], |r| get_u64(r, 0)).map_err(|e| backend(&e))?;
        let seqs = rows.collect::<rusqlite::Result<Vec<u64>>>().map_err(|e| backend(&e))?;
        Ok(newest_first(seqs.into_iter()))
    }

    fn snapshot_at(&self, id: &DocId, seq: u64) -> Result<Option<Snapshot>, StoreError> {
        self.read()
            .query_row(
                "SELECT seq, payload, key_hint FROM doc_snapshots WHERE app = ?1 AND doc = ?2 AND seq = ?3 LIMIT 1",
                params![id.app, id.doc, int(seq)],
                |r| Ok(Snapshot { seq: get_u64(r, 0)?, payload: r.get(1)?, key_hint: r.get(2)? }),
            )
            .optional()
            .map_err(|e| backend(&e))
    }

    fn find_op(&self, id: &DocId, op_id: &str) -> Result<Option<u64>, StoreError> {
        op_seq(&self.read(), id, op_id).map_err(|e| backend(&e))
    }

    fn compact(&self, id: &DocId, upto: u64) -> Result<u64, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| backend(&e))?;
        // Payloads go; the rows stay as tombstones so a compacted op id is
        // still recognised as a duplicate.
        let dropped = tx
            .execute(
                "UPDATE ops SET payload = '' WHERE app = ?1 AND doc = ?2 AND seq <= ?3 AND payload != ''",
                params![id.app, id.doc, int(upto)],
            )
            .map_err(|e| backend(&e))?;
        tx.execute(
            "UPDATE docs SET floor = MAX(floor, MIN(?3, head)),
                 bytes = (SELECT COALESCE(SUM(LENGTH(CAST(payload AS BLOB)) + LENGTH(CAST(op_id AS BLOB)) + ?4), 0)
                          FROM ops WHERE app = ?1 AND doc = ?2 AND payload != '')
             WHERE app = ?1 AND doc = ?2",
            params![id.app, id.doc, int(upto), int(OP_OVERHEAD_BYTES)],
        )
        .map_err(|e| backend(&e))?;
        // Tombstones keep compacted op ids answerable (`Duplicate`,
        // `op_seq`) for a bounded window, not forever.
        tx.execute(
            "DELETE FROM ops WHERE app = ?1 AND doc = ?2 AND payload = '' AND seq <= ?3",
            params![id.app, id.doc, int(upto.saturating_sub(TOMBSTONES_KEPT))],
        )
        .map_err(|e| backend(&e))?;
        tx.commit().map_err(|e| backend(&e))?;
        Ok(dropped as u64)
    }

    fn key_hint(&self, id: &DocId) -> Result<Option<String>, StoreError> {
        session_hint(&self.read(), id).map_err(|e| backend(&e))
    }

    fn claim_key_hint(&self, id: &DocId, hint: &str) -> Result<Option<String>, StoreError> {
        // Almost every claim finds a hint or a history already: answered
        // from the read side, without a write transaction.
        let recorded = |conn: &Connection| -> rusqlite::Result<(u64, Option<String>)> {
            Ok(conn
                .query_row(
                    "SELECT head, key_hint FROM docs WHERE app = ?1 AND doc = ?2",
                    params![id.app, id.doc],
                    |r| Ok((get_u64(r, 0)?, r.get(1)?)),
                )
                .optional()?
                .unwrap_or((0, None)))
        };
        let (head, found) = recorded(&self.read()).map_err(|e| backend(&e))?;
        if found.is_some() || head > 0 {
            return Ok(found);
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| backend(&e))?;
        let (head, found) = recorded(&tx).map_err(|e| backend(&e))?;
        if found.is_some() || head > 0 {
            return Ok(found);
        }
        check_quota(&tx, &self.limits, id)?;
        tx.execute(
            "INSERT INTO docs (app, doc, key_hint) VALUES (?1, ?2, ?3)
             ON CONFLICT (app, doc) DO UPDATE SET key_hint = excluded.key_hint",
            params![id.app, id.doc, hint],
        )
        .map_err(|e| backend(&e))?;
        tx.commit().map_err(|e| backend(&e))?;
        Ok(Some(hint.to_owned()))
    }
}

/// A sequence number or size as SQLite stores it (INTEGER is i64; ours
/// never approach 2^63).
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Column `i` as a u64 (negative values are corruption, reported as errors).
fn get_u64(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(i)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, value))
}

fn backend(err: &dyn std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealcast_sequencer::conformance::{conformance, history_cost_conformance, quota_conformance};

    fn temp_db(tag: &str) -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        std::env::temp_dir()
            .join(format!("sealcast-{tag}-{}-{nanos}", std::process::id()))
            .join("docs.sqlite3")
    }

    #[test]
    fn sqlite_store_meets_the_contract() {
        let path = temp_db("conformance");
        conformance(&SqliteStore::open(&path, DocLimits::default()).unwrap());
        let quota_path = temp_db("quota");
        let limits = DocLimits { max_documents_per_app: 2, ..DocLimits::default() };
        quota_conformance(&SqliteStore::open(&quota_path, limits).unwrap());
        let cost_limits = DocLimits { max_document_bytes: 1000, ..DocLimits::default() };
        let cost_path = temp_db("cost");
        history_cost_conformance(&SqliteStore::open(&cost_path, cost_limits).unwrap());
        std::fs::remove_dir_all(cost_path.parent().unwrap()).ok();
        std::fs::remove_dir_all(quota_path.parent().unwrap()).ok();
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[test]
    fn data_survives_reopening() {
        let path = temp_db("reopen");
        let doc = DocId::new("a", "d");
        {
            let store = SqliteStore::open(&path, DocLimits::default()).unwrap();
            store.append(&doc, 0, "op-1", "payload-1", None).unwrap();
            store.append(&doc, 1, "op-2", "payload-2", None).unwrap();
            store.put_snapshot(&doc, &Snapshot { seq: 1, payload: "s".into(), key_hint: None }, "u").unwrap();
        }
        let store = SqliteStore::open(&path, DocLimits::default()).unwrap();
        assert_eq!(store.head(&doc).unwrap(), 2);
        assert_eq!(store.append(&doc, 0, "op-1", "payload-1", None).unwrap(), AppendOutcome::Duplicate(1));
        assert_eq!(store.ops_since(&doc, 0, Page { ops: 10, bytes: usize::MAX }).unwrap().len(), 2);
        assert_eq!(store.latest_snapshot(&doc).unwrap().unwrap().seq, 1);
        let mode: String = store.lock().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        let sync: i64 = store.lock().query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2), "WAL with synchronous=FULL");
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[test]
    fn a_database_from_before_authors_and_hints_is_upgraded_in_place() {
        let path = temp_db("upgrade");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE docs (app TEXT NOT NULL, doc TEXT NOT NULL, head INTEGER NOT NULL DEFAULT 0,
                     floor INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
                     PRIMARY KEY (app, doc)) WITHOUT ROWID;
                 CREATE TABLE ops (app TEXT NOT NULL, doc TEXT NOT NULL, seq INTEGER NOT NULL,
                     base INTEGER NOT NULL, op_id TEXT NOT NULL, payload TEXT NOT NULL,
                     PRIMARY KEY (app, doc, seq)) WITHOUT ROWID;
                 INSERT INTO docs VALUES ('a', 'old', 1, 0, 300);
                 INSERT INTO ops VALUES ('a', 'old', 1, 0, 'op-1', 'payload-1');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, DocLimits::default()).unwrap();
        let old = DocId::new("a", "old");
        assert_eq!(store.ops_since(&old, 0, Page { ops: 10, bytes: usize::MAX }).unwrap().len(), 1);
        assert_eq!(
            store.claim_key_hint(&old, "late").unwrap(),
            None,
            "a document with history keeps no hint"
        );
        assert_eq!(store.append(&old, 1, "op-2", "p", Some("ann")).unwrap(), AppendOutcome::Appended(2));
        let new = DocId::new("a", "new");
        assert_eq!(store.claim_key_hint(&new, "salt").unwrap().as_deref(), Some("salt"));
        drop(store);
        let reopened = SqliteStore::open(&path, DocLimits::default()).unwrap();
        assert_eq!(reopened.key_hint(&new).unwrap().as_deref(), Some("salt"), "the hint is durable");
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }

    #[test]
    fn concurrent_appends_get_distinct_sequence_numbers() {
        let path = temp_db("concurrent");
        let store = std::sync::Arc::new(SqliteStore::open(&path, DocLimits::default()).unwrap());
        let doc = DocId::new("a", "d");
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (store, doc) = (store.clone(), doc.clone());
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| store.append(&doc, 0, &format!("t{t}-{i}"), "p", None).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .map(|o| match o {
                AppendOutcome::Appended(s) => s,
                AppendOutcome::Duplicate(s) => panic!("duplicate {s}"),
            })
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }
}
