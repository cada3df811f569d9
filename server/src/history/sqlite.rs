//! [`SqliteHistory`]: streams in a SQLite file under the data directory,
//! so a restart keeps them and their epochs (clients recover across it).
//!
//! WAL journal with `synchronous = NORMAL`: a committed append is in the
//! WAL before the event is delivered, so it survives the process dying
//! (`kill -9`, a crash); only the operating system going down can lose the
//! last commits. That case is detected by the machine's boot id changing
//! between two opens, and every stream then starts a new epoch: readers
//! are told `epoch_changed` instead of being handed offsets that may have
//! been given twice.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use sealcast_core::protocol::history::{HistoryEvent, HistoryPage, Position, Read};
use serde_json::value::RawValue;

use super::page::{self, PageBounds, StreamState, Window};
use super::{HistoryStore, HistoryStoreError, NewEvent, StreamLimits, new_epoch, ttl_ms};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS streams (
        app TEXT NOT NULL, channel TEXT NOT NULL,
        epoch TEXT NOT NULL, head INTEGER NOT NULL,
        kept INTEGER NOT NULL, bytes INTEGER NOT NULL,
        PRIMARY KEY (app, channel)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        app TEXT NOT NULL, channel TEXT NOT NULL, pos INTEGER NOT NULL,
        time_ms INTEGER NOT NULL, event TEXT NOT NULL, data TEXT NOT NULL,
        user_id TEXT, cost INTEGER NOT NULL);
    CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (app, channel, pos);
    CREATE INDEX IF NOT EXISTS events_by_app ON events (app, id);
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
";

/// Streams in a SQLite database file.
#[derive(Debug)]
pub struct SqliteHistory {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Connection,
    /// Bytes kept per app (the app cap is checked on every append).
    app_bytes: HashMap<String, usize>,
}

fn backend(err: &dyn std::fmt::Display) -> HistoryStoreError {
    HistoryStoreError::Backend(err.to_string())
}

/// This boot of the machine ("" where the system does not say).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

impl SqliteHistory {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteHistory, HistoryStoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| backend(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| backend(&e))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| backend(&e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| backend(&e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| backend(&e))?;
        conn.execute_batch(SCHEMA).map_err(|e| backend(&e))?;
        let boot = boot_id();
        let stored: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'boot_id'", [], |row| row.get(0))
            .optional()
            .map_err(|e| backend(&e))?;
        if stored.is_some_and(|stored| stored != boot || boot.is_empty()) {
            // The machine went down since the last open: the last commits
            // may be lost, so no stream continues its old epoch.
            let renewed = conn
                .execute("UPDATE streams SET epoch = lower(hex(randomblob(8)))", [])
                .map_err(|e| backend(&e))?;
            tracing::warn!(
                streams = renewed,
                "the machine restarted since history was last open: new epochs"
            );
        }
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot_id', ?1)", [&boot])
            .map_err(|e| backend(&e))?;
        let mut app_bytes = HashMap::new();
        {
            let mut statement =
                conn.prepare("SELECT app, SUM(cost) FROM events GROUP BY app").map_err(|e| backend(&e))?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
                .map_err(|e| backend(&e))?;
            for row in rows {
                let (app, bytes) = row.map_err(|e| backend(&e))?;
                app_bytes.insert(app, usize::try_from(bytes).unwrap_or(0));
            }
        }
        Ok(SqliteHistory { inner: Mutex::new(Inner { conn, app_bytes }) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A stream's row: epoch, head, kept, bytes.
type StreamRow = (String, i64, i64, i64);

/// SQLite integers are signed; offsets, times and sizes stay far below
/// `i64::MAX`.
fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn stream_row(tx: &Connection, app: &str, channel: &str) -> rusqlite::Result<Option<StreamRow>> {
    tx.prepare_cached("SELECT epoch, head, kept, bytes FROM streams WHERE app = ?1 AND channel = ?2")?
        .query_row(params![app, channel], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .optional()
}

/// The stream's oldest kept event: (row id, time, cost).
fn oldest(tx: &Connection, app: &str, channel: &str) -> rusqlite::Result<Option<(i64, i64, i64)>> {
    tx.prepare_cached(
        "SELECT id, time_ms, cost FROM events WHERE app = ?1 AND channel = ?2 ORDER BY pos LIMIT 1",
    )?
    .query_row(params![app, channel], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
    .optional()
}

fn delete_event(tx: &Connection, id: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM events WHERE id = ?1")?.execute([id]).map(drop)
}

/// Keeps `event` as the stream's next offset and trims (each step an
/// index seek: events are dropped oldest first, one at a time, while the
/// stream's counters are kept here and written once).
fn append_in(
    tx: &Connection,
    app: &str,
    channel: &str,
    event: NewEvent<'_>,
    limits: &StreamLimits,
    now_ms: u64,
    app_bytes: usize,
) -> rusqlite::Result<(Position, usize)> {
    let (epoch, mut head, mut kept, mut bytes) = match stream_row(tx, app, channel)? {
        Some(row) => row,
        None => {
            let epoch = new_epoch();
            tx.prepare_cached(
                "INSERT INTO streams (app, channel, epoch, head, kept, bytes) VALUES (?1, ?2, ?3, 0, 0, 0)",
            )?
            .execute(params![app, channel, epoch])?;
            (epoch, 0, 0, 0)
        }
    };
    let mut freed = 0;
    let cutoff = int(now_ms.saturating_sub(ttl_ms(limits.ttl)));
    while let Some((id, time, cost)) = oldest(tx, app, channel)?
        && time < cutoff
    {
        delete_event(tx, id)?;
        (kept, bytes, freed) = (kept - 1, bytes - cost, freed + cost);
    }
    let cost = int(event.cost());
    head += 1;
    tx.prepare_cached(
        "INSERT INTO events (app, channel, pos, time_ms, event, data, user_id, cost)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        app,
        channel,
        head,
        int(now_ms),
        event.event,
        event.data.map_or("null", RawValue::get),
        event.user_id,
        cost
    ])?;
    (kept, bytes) = (kept + 1, bytes + cost);
    while uint(kept) as usize > limits.max_events || uint(bytes) as usize > limits.max_bytes {
        let Some((id, _, cost)) = oldest(tx, app, channel)? else { break };
        delete_event(tx, id)?;
        (kept, bytes, freed) = (kept - 1, bytes - cost, freed + cost);
    }
    tx.prepare_cached("UPDATE streams SET head = ?3, kept = ?4, bytes = ?5 WHERE app = ?1 AND channel = ?2")?
        .execute(params![app, channel, head, kept, bytes])?;
    let mut total = (int(app_bytes) + cost - freed).max(0);
    while uint(total) as usize > limits.app_max_bytes {
        let victim: Option<(String, i64)> = tx
            .query_row(
                "DELETE FROM events WHERE id = (SELECT id FROM events WHERE app = ?1 ORDER BY id LIMIT 1) RETURNING channel, cost",
                params![app],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((victim, cost)) = victim else { break };
        total = (total - cost).max(0);
        tx.execute(
            "UPDATE streams SET kept = kept - 1, bytes = bytes - ?3 WHERE app = ?1 AND channel = ?2",
            params![app, victim, cost],
        )?;
        // A stream left with nothing is forgotten (as in memory).
        tx.execute("DELETE FROM streams WHERE app = ?1 AND channel = ?2 AND kept = 0", params![app, victim])?;
    }
    Ok((Position { offset: uint(head), epoch }, uint(total) as usize))
}

fn event_of(row: &Row<'_>) -> rusqlite::Result<(HistoryEvent, usize)> {
    let data: String = row.get(2)?;
    let data = RawValue::from_string(data).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok((
        HistoryEvent {
            offset: uint(row.get(0)?),
            event: row.get(1)?,
            data,
            user_id: row.get(3)?,
            time_ms: uint(row.get(4)?),
        },
        uint(row.get(5)?) as usize,
    ))
}

impl HistoryStore for SqliteHistory {
    fn append(
        &self,
        app: &str,
        channel: &str,
        event: NewEvent<'_>,
        limits: &StreamLimits,
        now_ms: u64,
    ) -> Result<Position, HistoryStoreError> {
        let mut inner = self.lock();
        let app_bytes = inner.app_bytes.get(app).copied().unwrap_or(0);
        let tx =
            inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| backend(&e))?;
        let (position, total) =
            append_in(&tx, app, channel, event, limits, now_ms, app_bytes).map_err(|e| backend(&e))?;
        tx.commit().map_err(|e| backend(&e))?;
        inner.app_bytes.insert(app.to_owned(), total);
        Ok(position)
    }

    fn read(
        &self,
        app: &str,
        channel: &str,
        read: &Read,
        limits: &StreamLimits,
        bounds: PageBounds,
        now_ms: u64,
    ) -> Result<HistoryPage, HistoryStoreError> {
        let mut inner = self.lock();
        let tx = inner.conn.transaction().map_err(|e| backend(&e))?;
        let oldest_ms = int(now_ms.saturating_sub(ttl_ms(limits.ttl)));
        let state = match stream_row(&tx, app, channel).map_err(|e| backend(&e))? {
            None => StreamState::default(),
            Some((epoch, head, ..)) => {
                let first: Option<i64> = tx
                    .query_row(
                        "SELECT pos FROM events WHERE app = ?1 AND channel = ?2 AND time_ms >= ?3 ORDER BY pos LIMIT 1",
                        params![app, channel, oldest_ms],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(|e| backend(&e))?;
                StreamState { epoch, head: uint(head), first: first.map(uint) }
            }
        };
        let (window, gap) = page::plan(read, &state)?;
        let (sql, from) = match window {
            Window::After(after) => ("pos > ?3 AND time_ms >= ?4 ORDER BY pos ASC", after),
            Window::Before(before) => ("pos < ?3 AND time_ms >= ?4 ORDER BY pos DESC", before),
        };
        let sql = format!(
            "SELECT pos, event, data, user_id, time_ms, cost FROM events WHERE app = ?1 AND channel = ?2 AND {sql} LIMIT ?5"
        );
        let mut statement = tx.prepare(&sql).map_err(|e| backend(&e))?;
        let rows = statement
            .query_map(params![app, channel, int(from), oldest_ms, int(bounds.events)], event_of)
            .map_err(|e| backend(&e))?;
        let (mut events, mut bytes) = (Vec::new(), 0);
        for row in rows {
            let (event, cost) = row.map_err(|e| backend(&e))?;
            if !page::fits(bounds, events.len(), bytes, cost) {
                break;
            }
            bytes += cost;
            events.push(event);
        }
        if let Window::Before(_) = window {
            events.reverse();
        }
        drop(statement);
        tx.finish().map_err(|e| backend(&e))?;
        Ok(page::finish(read, state, window, gap, events))
    }

    fn app_bytes(&self, app: &str) -> usize {
        self.lock().app_bytes.get(app).copied().unwrap_or(0)
    }
}
