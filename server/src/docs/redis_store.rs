//! [`RedisStore`]: the [`DocStore`] of cluster mode. Every node sequences
//! through the same Redis, so two nodes can never assign the same sequence
//! number: each change is one Lua script, which Redis runs atomically.
//!
//! Keys per document (`{app}` and `{doc}` as given; hash tags keep one
//! document's keys in one Redis Cluster slot):
//! - `sealcast:doc:{app|doc}:meta` — hash `head`, `floor`, `bytes`,
//!   `compacted`, `forgotten`
//! - `sealcast:doc:{app|doc}:ops` — hash `seq` → `base|len(op_id)|op_id payload`
//! - `sealcast:doc:{app|doc}:ids` — hash `op_id` → `seq|author` (kept after
//!   compaction for [`TOMBSTONES_KEPT`] ops)
//! - `sealcast:doc:{app|doc}:tomb` — hash `seq` → `op_id` of compacted ops
//!   still in `ids` (so they can be forgotten in order)
//! - `sealcast:doc:{app|doc}:snap` — hash `seq`, `payload`, `key_hint`
//!
//! Durability is Redis's: run it with `appendonly yes` (and
//! `appendfsync always` to match the SQLite store's "fsynced before the
//! ack"); see docs/scaling.md.

use std::sync::{Mutex, MutexGuard};

use redis::{Connection, Script};

use super::store::{OP_OVERHEAD_BYTES, SNAPSHOT_LAG_MAX, TOMBSTONES_KEPT, check_payload, check_snapshot};
use super::{AppendOutcome, DocId, DocLimits, DocStore, Snapshot, StoreError, StoredOp};

const APPEND: &str = r"
local existing = redis.call('HGET', KEYS[3], ARGV[2])
if existing then
  local seq, author = string.match(existing, '^(%d+)|?(.*)$')
  local op = redis.call('HGET', KEYS[2], seq)
  local same = op and op == (ARGV[1] .. '|' .. string.len(ARGV[2]) .. '|' .. ARGV[2] .. ARGV[3])
  if author == ARGV[5] or same then return {'dup', tonumber(seq)} end
  return {'conflict', tonumber(seq)}
end
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
local base = tonumber(ARGV[1])
if base < floor or base > head then return {'resync', floor, head} end
local size = string.len(ARGV[3]) + string.len(ARGV[2]) + tonumber(ARGV[6])
if bytes + size > tonumber(ARGV[4]) then return {'too_large'} end
local seq = head + 1
redis.call('HSET', KEYS[2], seq, ARGV[1] .. '|' .. string.len(ARGV[2]) .. '|' .. ARGV[2] .. ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], seq .. '|' .. ARGV[5])
redis.call('HSET', KEYS[1], 'head', seq, 'bytes', bytes + size)
return {'ok', seq}
";

const SNAPSHOT: &str = r"
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
local seq = tonumber(ARGV[1])
if seq > head then return {'ahead', head} end
local current = tonumber(redis.call('HGET', KEYS[3], 'seq') or '-1')
if current > seq then return {'ok'} end
-- Bounded: a snapshot far behind the head is refused, never scanned.
if head - seq > tonumber(ARGV[4]) then return {'stale'} end
for s = seq + 1, head do
  local op = redis.call('HGET', KEYS[2], s)
  if op then
    local base = tonumber(string.match(op, '^(%d+)|'))
    if base < seq then return {'stale'} end
  end
end
redis.call('HSET', KEYS[3], 'seq', seq, 'payload', ARGV[2], 'key_hint', ARGV[3])
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
if seq > floor then redis.call('HSET', KEYS[1], 'floor', seq) end
return {'ok'}
";

const COMPACT: &str = r"
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
local done = tonumber(redis.call('HGET', KEYS[1], 'compacted') or '0')
local upto = math.min(tonumber(ARGV[1]), head)
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
local dropped = 0
for s = done + 1, upto do
  local op = redis.call('HGET', KEYS[2], s)
  if op then
    local header, id_len = string.match(op, '^(%d+|(%d+)|)')
    local op_id = string.sub(op, string.len(header) + 1, string.len(header) + tonumber(id_len))
    bytes = bytes - (string.len(op) - string.len(header) + tonumber(ARGV[2]))
    redis.call('HDEL', KEYS[2], s)
    redis.call('HSET', KEYS[4], s, op_id)
    dropped = dropped + 1
  end
end
if upto > done then redis.call('HSET', KEYS[1], 'compacted', upto, 'bytes', bytes) end
-- Forget the op ids of ops compacted more than ARGV[3] ops ago.
local forgotten = tonumber(redis.call('HGET', KEYS[1], 'forgotten') or '0')
local forget = upto - tonumber(ARGV[3])
for s = forgotten + 1, forget do
  local op_id = redis.call('HGET', KEYS[4], s)
  if op_id then
    redis.call('HDEL', KEYS[3], op_id)
    redis.call('HDEL', KEYS[4], s)
  end
end
if forget > forgotten then redis.call('HSET', KEYS[1], 'forgotten', forget) end
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
if upto > floor then redis.call('HSET', KEYS[1], 'floor', upto) end
return dropped
";

/// Documents in Redis.
pub struct RedisStore {
    client: redis::Client,
    limits: DocLimits,
    conn: Mutex<Option<Connection>>,
    append: Script,
    snapshot: Script,
    compact: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn keys(id: &DocId) -> [String; 5] {
    let tag = format!("sealcast:doc:{{{}|{}}}", id.app, id.doc);
    [
        format!("{tag}:meta"),
        format!("{tag}:ops"),
        format!("{tag}:ids"),
        format!("{tag}:snap"),
        format!("{tag}:tomb"),
    ]
}

fn backend(err: &redis::RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {err}"))
}

impl RedisStore {
    /// A store on the Redis at `url` (connects lazily, reconnects after errors).
    pub fn open(url: &str, limits: DocLimits) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| backend(&e))?;
        Ok(RedisStore {
            client,
            limits,
            conn: Mutex::new(None),
            append: Script::new(APPEND),
            snapshot: Script::new(SNAPSHOT),
            compact: Script::new(COMPACT),
        })
    }

    /// Runs `f` on the connection; a failed call drops it so the next call
    /// reconnects.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut guard: MutexGuard<'_, Option<Connection>> =
            self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let conn = self
                .client
                .get_connection_with_timeout(std::time::Duration::from_secs(2))
                .map_err(|e| backend(&e))?;
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            *guard = Some(conn);
        }
        let result = f(guard.as_mut().expect("connected above"));
        if result.is_err() {
            *guard = None;
        }
        result.map_err(|e| backend(&e))
    }
}

/// `base|len(op_id)|op_id payload` (the op id's length makes any op id safe).
fn parse_op(seq: u64, stored: &str) -> Option<StoredOp> {
    let (base, rest) = stored.split_once('|')?;
    let (id_len, rest) = rest.split_once('|')?;
    let id_len: usize = id_len.parse().ok()?;
    let (op_id, payload) = (rest.get(..id_len)?, rest.get(id_len..)?);
    Some(StoredOp { seq, base: base.parse().ok()?, op_id: op_id.to_owned(), payload: payload.to_owned() })
}

impl DocStore for RedisStore {
    fn append(
        &self,
        id: &DocId,
        base: u64,
        op_id: &str,
        payload: &str,
        author: Option<&str>,
    ) -> Result<AppendOutcome, StoreError> {
        check_payload(&self.limits, payload)?;
        let [meta, ops, ids, ..] = keys(id);
        let reply: Vec<redis::Value> = self.with_conn(|conn| {
            self.append
                .key(&meta)
                .key(&ops)
                .key(&ids)
                .arg(base)
                .arg(op_id)
                .arg(payload)
                .arg(self.limits.max_document_bytes)
                // User ids are never empty: "" is "no author".
                .arg(author.unwrap_or(""))
                .arg(OP_OVERHEAD_BYTES)
                .invoke(conn)
        })?;
        let text = |i: usize| match reply.get(i) {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        let number = |i: usize| match reply.get(i) {
            Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        match text(0).as_str() {
            "ok" => Ok(AppendOutcome::Appended(number(1))),
            "dup" => Ok(AppendOutcome::Duplicate(number(1))),
            "conflict" => Err(StoreError::Conflict { seq: number(1) }),
            "resync" => Err(StoreError::Resync { base, oldest: number(1), head: number(2) }),
            "too_large" => {
                Err(StoreError::TooLarge("document history over its size limit: compact with a snapshot"))
            }
            other => Err(StoreError::Backend(format!("unexpected append reply {other:?}"))),
        }
    }

    fn head(&self, id: &DocId) -> Result<u64, StoreError> {
        let [meta, ..] = keys(id);
        let head: Option<u64> =
            self.with_conn(|conn| redis::cmd("HGET").arg(&meta).arg("head").query(conn))?;
        Ok(head.unwrap_or(0))
    }

    fn ops_since(&self, id: &DocId, since: u64, limit: usize) -> Result<Vec<StoredOp>, StoreError> {
        let head = self.head(id)?;
        let [_, ops, ..] = keys(id);
        let mut found = Vec::new();
        let mut next = since.saturating_add(1);
        // Compacted ops are gone: read in chunks until `limit` ops or the head.
        while found.len() < limit && next <= head {
            let last = head.min(next + limit as u64 - 1);
            let seqs: Vec<u64> = (next..=last).collect();
            let values: Vec<Option<String>> =
                self.with_conn(|conn| redis::cmd("HMGET").arg(&ops).arg(&seqs).query(conn))?;
            for (seq, value) in seqs.iter().zip(values) {
                if let Some(op) = value.and_then(|v| parse_op(*seq, &v)) {
                    found.push(op);
                    if found.len() == limit {
                        break;
                    }
                }
            }
            next = last + 1;
        }
        Ok(found)
    }

    fn put_snapshot(&self, id: &DocId, snapshot: &Snapshot) -> Result<(), StoreError> {
        check_snapshot(&self.limits, &snapshot.payload)?;
        let [meta, ops, _, snap, _] = keys(id);
        let reply: Vec<redis::Value> = self.with_conn(|conn| {
            self.snapshot
                .key(&meta)
                .key(&ops)
                .key(&snap)
                .arg(snapshot.seq)
                .arg(&snapshot.payload)
                .arg(snapshot.key_hint.as_deref().unwrap_or(""))
                .arg(SNAPSHOT_LAG_MAX)
                .invoke(conn)
        })?;
        match reply.first() {
            Some(redis::Value::BulkString(b)) if b == b"ok" => Ok(()),
            Some(redis::Value::BulkString(b)) if b == b"stale" => {
                Err(StoreError::SnapshotStale { seq: snapshot.seq })
            }
            Some(redis::Value::BulkString(b)) if b == b"ahead" => {
                let head = match reply.get(1) {
                    Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
                    _ => 0,
                };
                Err(StoreError::SnapshotAhead { seq: snapshot.seq, head })
            }
            other => Err(StoreError::Backend(format!("unexpected snapshot reply {other:?}"))),
        }
    }

    fn find_op(&self, id: &DocId, op_id: &str) -> Result<Option<u64>, StoreError> {
        let [_, _, ids, ..] = keys(id);
        let entry: Option<String> =
            self.with_conn(|conn| redis::cmd("HGET").arg(&ids).arg(op_id).query(conn))?;
        // `seq|author` (or a bare `seq` from before authors were stored).
        Ok(entry.and_then(|e| e.split('|').next().and_then(|seq| seq.parse().ok())))
    }

    fn latest_snapshot(&self, id: &DocId) -> Result<Option<Snapshot>, StoreError> {
        let [.., snap, _] = keys(id);
        let (seq, payload, key_hint): (Option<u64>, Option<String>, Option<String>) =
            self.with_conn(|conn| {
                redis::cmd("HMGET").arg(&snap).arg("seq").arg("payload").arg("key_hint").query(conn)
            })?;
        Ok(match (seq, payload) {
            (Some(seq), Some(payload)) => {
                Some(Snapshot { seq, payload, key_hint: key_hint.filter(|h| !h.is_empty()) })
            }
            _ => None,
        })
    }

    fn compact(&self, id: &DocId, upto: u64) -> Result<u64, StoreError> {
        let [meta, ops, ids, _, tomb] = keys(id);
        self.with_conn(|conn| {
            self.compact
                .key(&meta)
                .key(&ops)
                .key(&ids)
                .key(&tomb)
                .arg(upto)
                .arg(OP_OVERHEAD_BYTES)
                .arg(TOMBSTONES_KEPT)
                .invoke(conn)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the shared contract against a throwaway redis-server (skipped
    /// when none is installed; scripts/test.sh installs it).
    #[test]
    fn redis_store_meets_the_contract() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let Ok(mut server) = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
        else {
            eprintln!("redis-server is not installed: skipping");
            return;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let store = RedisStore::open(&format!("redis://127.0.0.1:{port}/0"), DocLimits::default()).unwrap();
        super::super::conformance(&store);
        let _ = server.kill();
        let _ = server.wait();
    }
}
