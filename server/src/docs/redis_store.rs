//! [`RedisStore`]: the [`DocStore`] of cluster mode. Every node sequences
//! through the same Redis, so two nodes can never assign the same sequence
//! number: each change is one Lua script, which Redis runs atomically.
//!
//! Keys per document (`{app}` and `{doc}` as given; hash tags keep one
//! document's keys in one Redis Cluster slot):
//! - `sealcast:doc:{app|doc}:meta` — hash `head`, `floor`, `bytes`,
//!   `compacted`, `forgotten`, `key_hint` (the session key hint, once
//!   claimed)
//! - `sealcast:doc:{app|doc}:ops` — hash `seq` → `base|len(op_id)|op_id payload`
//! - `sealcast:doc:{app|doc}:ids` — hash `op_id` → `seq|author` (kept after
//!   compaction for [`TOMBSTONES_KEPT`] ops)
//! - `sealcast:doc:{app|doc}:tomb` — hash `seq` → `op_id` of compacted ops
//!   still in `ids` (so they can be forgotten in order)
//! - `sealcast:doc:{app|doc}:snapseq` — hash `uploader` → `seq` of the kept
//!   snapshots (see the `DocStore` contract)
//! - `sealcast:doc:{app|doc}:snaps` — hash `uploader` →
//!   `len(key_hint)|key_hint payload`
//! - `sealcast:doc:{app|doc}:snap` — the one snapshot of stores before
//!   snapshots were kept per uploader (hash `seq`, `payload`, `key_hint`),
//!   moved into the above by the next snapshot
//!
//! Durability is Redis's: run it with `appendonly yes` (and
//! `appendfsync always` to match the SQLite store's "fsynced before the
//! ack"); see docs/scaling.md.

use redis::{Connection, Script};
use sealcast_core::protocol::doc::DocErrorCode;

use crate::redis_sync::SyncRedis;

use super::{AppendOutcome, DocId, DocLimits, DocStore, Page, Snapshot, StoreError, StoredOp};
use sealcast_sequencer::policy::{
    APP_QUOTA_REACHED, OP_OVERHEAD_BYTES, SNAPSHOT_LAG_MAX, SNAPSHOT_SLOT_SPAN, SNAPSHOTS_KEPT,
    TOMBSTONES_KEPT, check_payload, check_snapshot, newest_first,
};

/// Ops read from Redis per round trip when paging.
const READ_CHUNK_OPS: usize = 100;

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
-- A new document: the caller checks the app's quota first.
if head == 0 and ARGV[7] == '0' then return {'new'} end
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
-- Bounded: a snapshot far behind the head is refused, never scanned.
if head - seq > tonumber(ARGV[4]) then return {'stale'} end
-- The snapshot of a store from before per-uploader slots becomes an
-- unnamed uploader's slot.
if redis.call('HLEN', KEYS[4]) == 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  local old = redis.call('HMGET', KEYS[3], 'seq', 'payload', 'key_hint')
  local hint = old[3] or ''
  redis.call('HSET', KEYS[4], '', old[1])
  redis.call('HSET', KEYS[5], '', string.len(hint) .. '|' .. hint .. old[2])
  redis.call('DEL', KEYS[3])
end
local uploader = ARGV[5]
local kept = redis.call('HGETALL', KEYS[4])
local newest = seq
for i = 2, #kept, 2 do newest = math.max(newest, tonumber(kept[i])) end
local displaced = {}
local remaining = {}
for i = 1, #kept, 2 do
  local u, s = kept[i], tonumber(kept[i + 1])
  if u == uploader then
    if s >= seq then return {'ok'} end
    table.insert(displaced, u)
  elseif newest - s > tonumber(ARGV[7]) then
    table.insert(displaced, u)
  else
    table.insert(remaining, {u, s})
  end
end
if #remaining >= tonumber(ARGV[6]) then
  local oldest = remaining[1]
  for _, slot in ipairs(remaining) do if slot[2] < oldest[2] then oldest = slot end end
  if oldest[2] >= seq then return {'ok'} end
  table.insert(displaced, oldest[1])
end
for s = seq + 1, head do
  local op = redis.call('HGET', KEYS[2], s)
  if op then
    local base = tonumber(string.match(op, '^(%d+)|'))
    if base < seq then return {'stale'} end
  end
end
for _, u in ipairs(displaced) do
  redis.call('HDEL', KEYS[4], u)
  redis.call('HDEL', KEYS[5], u)
end
redis.call('HSET', KEYS[4], uploader, seq)
redis.call('HSET', KEYS[5], uploader, string.len(ARGV[3]) .. '|' .. ARGV[3] .. ARGV[2])
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
if seq > floor then redis.call('HSET', KEYS[1], 'floor', seq) end
return {'ok'}
";

const CLAIM_KEY_HINT: &str = r"
local hint = redis.call('HGET', KEYS[1], 'key_hint')
if hint then return {'ok', hint} end
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
if head > 0 then return {'none'} end
-- A new document: the caller checks the app's quota first.
if ARGV[2] == '0' then return {'new'} end
redis.call('HSET', KEYS[1], 'key_hint', ARGV[1])
return {'ok', ARGV[1]}
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
    redis: SyncRedis,
    limits: DocLimits,
    append: Script,
    snapshot: Script,
    compact: Script,
    claim_key_hint: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// A document's keys: meta, ops, ids, snap (pre-slot snapshot), tomb,
/// snapseq, snaps.
fn keys(id: &DocId) -> [String; 7] {
    let tag = format!("sealcast:doc:{{{}|{}}}", id.app, id.doc);
    ["meta", "ops", "ids", "snap", "tomb", "snapseq", "snaps"].map(|k| format!("{tag}:{k}"))
}

fn backend(err: &redis::RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {err}"))
}

impl RedisStore {
    /// A store on the Redis at `url` (connects lazily, reconnects after errors).
    pub fn open(url: &str, limits: DocLimits) -> Result<RedisStore, StoreError> {
        Ok(RedisStore {
            redis: SyncRedis::open(url).map_err(|e| backend(&e))?,
            limits,
            append: Script::new(APPEND),
            snapshot: Script::new(SNAPSHOT),
            compact: Script::new(COMPACT),
            claim_key_hint: Script::new(CLAIM_KEY_HINT),
        })
    }

    /// Runs a script that answers `{'new'}` for a document that does not
    /// exist yet (`run(false)`), then, within the app's quota, again with
    /// the quota checked (`run(true)`).
    fn admitting(
        &self,
        id: &DocId,
        run: impl Fn(bool) -> Result<Vec<redis::Value>, StoreError>,
    ) -> Result<Vec<redis::Value>, StoreError> {
        let reply = run(false)?;
        if !matches!(reply.first(), Some(redis::Value::BulkString(b)) if b == b"new") {
            return Ok(reply);
        }
        self.admit_new_document(id)?;
        run(true)
    }

    /// The app's document quota, checked only when a document is created
    /// (by its first op or its session key hint). Its set lives outside the
    /// document's hash slot, so it is not part of the scripts (two nodes
    /// creating documents at once may overshoot by one each).
    fn admit_new_document(&self, id: &DocId) -> Result<(), StoreError> {
        let app_docs = format!("sealcast:app:{{{}}}:docs", id.app);
        let (known, count): (bool, u64) = self.with_conn(|conn| {
            redis::pipe().cmd("SISMEMBER").arg(&app_docs).arg(&id.doc).cmd("SCARD").arg(&app_docs).query(conn)
        })?;
        if !known && count >= self.limits.max_documents_per_app {
            return Err(StoreError::Quota(APP_QUOTA_REACHED));
        }
        self.with_conn(|conn| redis::cmd("SADD").arg(&app_docs).arg(&id.doc).query::<()>(conn))
    }

    /// Runs `f` on the connection (see [`SyncRedis::with_conn`]).
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.redis.with_conn(f).map_err(|e| backend(&e))
    }
}

/// `base|len(op_id)|op_id payload` (the op id's length makes any op id
/// safe); the author is read from the op ids' hash ([`author_of`]).
fn parse_op(seq: u64, stored: &str) -> Option<StoredOp> {
    let (base, rest) = stored.split_once('|')?;
    let (id_len, rest) = rest.split_once('|')?;
    let id_len: usize = id_len.parse().ok()?;
    let (op_id, payload) = (rest.get(..id_len)?, rest.get(id_len..)?);
    let (op_id, payload) = (op_id.to_owned(), payload.to_owned());
    Some(StoredOp { seq, base: base.parse().ok()?, op_id, payload, author: None })
}

/// The author in an op ids' hash entry (`seq|author`; empty: unknown).
fn author_of(entry: Option<String>) -> Option<String> {
    let entry = entry?;
    let (_, author) = entry.split_once('|')?;
    (!author.is_empty()).then(|| author.to_owned())
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
        let run = |quota_checked: bool| -> Result<Vec<redis::Value>, StoreError> {
            self.with_conn(|conn| {
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
                    .arg(if quota_checked { "1" } else { "0" })
                    .invoke(conn)
            })
        };
        let reply = self.admitting(id, run)?;
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
            // A refusal: the script answers with its wire code.
            other => match DocErrorCode::parse(other) {
                DocErrorCode::Conflict => Err(StoreError::Conflict { seq: number(1) }),
                DocErrorCode::Resync => Err(StoreError::Resync { base, oldest: number(1), head: number(2) }),
                DocErrorCode::TooLarge => {
                    Err(StoreError::TooLarge("document history over its size limit: compact with a snapshot"))
                }
                _ => Err(StoreError::Backend(format!("unexpected append reply {other:?}"))),
            },
        }
    }

    fn head(&self, id: &DocId) -> Result<u64, StoreError> {
        let [meta, ..] = keys(id);
        let head: Option<u64> =
            self.with_conn(|conn| redis::cmd("HGET").arg(&meta).arg("head").query(conn))?;
        Ok(head.unwrap_or(0))
    }

    fn ops_since(&self, id: &DocId, since: u64, page: Page) -> Result<Vec<StoredOp>, StoreError> {
        let head = self.head(id)?;
        let [_, ops, ids, ..] = keys(id);
        let mut fill = page.fill();
        let mut next = since.saturating_add(1);
        // Compacted ops are gone: read in chunks until the page is full or
        // the head. Chunks are small so a page of large ops does not read
        // far past its byte bound.
        let chunk = page.ops.clamp(1, READ_CHUNK_OPS) as u64;
        'read: while !fill.is_full() && next <= head {
            let last = head.min(next.saturating_add(chunk - 1));
            let seqs: Vec<u64> = (next..=last).collect();
            let values: Vec<Option<String>> =
                self.with_conn(|conn| redis::cmd("HMGET").arg(&ops).arg(&seqs).query(conn))?;
            let mut read: Vec<StoredOp> =
                seqs.iter().zip(values).filter_map(|(seq, value)| parse_op(*seq, &value?)).collect();
            // Their authors, in one more round trip per chunk.
            if !read.is_empty() {
                let op_ids: Vec<&str> = read.iter().map(|op| op.op_id.as_str()).collect();
                let entries: Vec<Option<String>> =
                    self.with_conn(|conn| redis::cmd("HMGET").arg(&ids).arg(&op_ids).query(conn))?;
                for (op, entry) in read.iter_mut().zip(entries) {
                    op.author = author_of(entry);
                }
            }
            for op in read {
                if !fill.push(op) {
                    break 'read;
                }
            }
            next = last + 1;
        }
        Ok(fill.ops)
    }

    fn put_snapshot(&self, id: &DocId, snapshot: &Snapshot, uploader: &str) -> Result<(), StoreError> {
        check_snapshot(&self.limits, &snapshot.payload)?;
        let [meta, ops, _, snap, _, snapseq, snaps] = keys(id);
        let reply: Vec<redis::Value> = self.with_conn(|conn| {
            self.snapshot
                .key(&meta)
                .key(&ops)
                .key(&snap)
                .key(&snapseq)
                .key(&snaps)
                .arg(snapshot.seq)
                .arg(&snapshot.payload)
                .arg(snapshot.key_hint.as_deref().unwrap_or(""))
                .arg(SNAPSHOT_LAG_MAX)
                .arg(uploader)
                .arg(SNAPSHOTS_KEPT)
                .arg(SNAPSHOT_SLOT_SPAN)
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

    fn snapshot_seqs(&self, id: &DocId) -> Result<Vec<u64>, StoreError> {
        let [.., snap, _, snapseq, _] = keys(id);
        let (slots, legacy): (Vec<u64>, Option<u64>) = self.with_conn(|conn| {
            let slots = redis::cmd("HVALS").arg(&snapseq).query(conn)?;
            let legacy = redis::cmd("HGET").arg(&snap).arg("seq").query(conn)?;
            Ok((slots, legacy))
        })?;
        Ok(if slots.is_empty() { legacy.into_iter().collect() } else { newest_first(slots.into_iter()) })
    }

    fn snapshot_at(&self, id: &DocId, seq: u64) -> Result<Option<Snapshot>, StoreError> {
        let [.., snap, _, snapseq, snaps] = keys(id);
        let slots: Vec<(String, u64)> =
            self.with_conn(|conn| redis::cmd("HGETALL").arg(&snapseq).query(conn))?;
        let Some((uploader, _)) = slots.into_iter().find(|(_, s)| *s == seq) else {
            // A store from before per-uploader slots.
            let (legacy_seq, payload, key_hint): (Option<u64>, Option<String>, Option<String>) = self
                .with_conn(|conn| {
                    redis::cmd("HMGET").arg(&snap).arg("seq").arg("payload").arg("key_hint").query(conn)
                })?;
            return Ok(match (legacy_seq, payload) {
                (Some(s), Some(payload)) if s == seq => {
                    Some(Snapshot { seq, payload, key_hint: key_hint.filter(|h| !h.is_empty()) })
                }
                _ => None,
            });
        };
        let stored: Option<String> =
            self.with_conn(|conn| redis::cmd("HGET").arg(&snaps).arg(&uploader).query(conn))?;
        // `len(key_hint)|key_hint payload`
        Ok(stored.and_then(|stored| {
            let (hint_len, rest) = stored.split_once('|')?;
            let hint_len: usize = hint_len.parse().ok()?;
            let (key_hint, payload) = (rest.get(..hint_len)?, rest.get(hint_len..)?);
            let key_hint = (!key_hint.is_empty()).then(|| key_hint.to_owned());
            Some(Snapshot { seq, payload: payload.to_owned(), key_hint })
        }))
    }

    fn compact(&self, id: &DocId, upto: u64) -> Result<u64, StoreError> {
        let [meta, ops, ids, _, tomb, ..] = keys(id);
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

    fn key_hint(&self, id: &DocId) -> Result<Option<String>, StoreError> {
        let [meta, ..] = keys(id);
        self.with_conn(|conn| redis::cmd("HGET").arg(&meta).arg("key_hint").query(conn))
    }

    fn claim_key_hint(&self, id: &DocId, hint: &str) -> Result<Option<String>, StoreError> {
        let [meta, ..] = keys(id);
        let run = |quota_checked: bool| -> Result<Vec<redis::Value>, StoreError> {
            self.with_conn(|conn| {
                self.claim_key_hint
                    .key(&meta)
                    .arg(hint)
                    .arg(if quota_checked { "1" } else { "0" })
                    .invoke(conn)
            })
        };
        match self.admitting(id, run)?.as_slice() {
            [redis::Value::BulkString(ok), redis::Value::BulkString(hint)] if ok == b"ok" => {
                Ok(Some(String::from_utf8_lossy(hint).into_owned()))
            }
            [redis::Value::BulkString(none)] if none == b"none" => Ok(None),
            other => Err(StoreError::Backend(format!("unexpected key hint reply {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealcast_sequencer::conformance::{conformance, history_cost_conformance, quota_conformance};

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
        conformance(&store);
        let limits = DocLimits { max_documents_per_app: 2, ..DocLimits::default() };
        let quota = RedisStore::open(&format!("redis://127.0.0.1:{port}/1"), limits).unwrap();
        quota_conformance(&quota);
        let cost_limits = DocLimits { max_document_bytes: 1000, ..DocLimits::default() };
        let cost = RedisStore::open(&format!("redis://127.0.0.1:{port}/2"), cost_limits).unwrap();
        history_cost_conformance(&cost);
        let _ = server.kill();
        let _ = server.wait();
    }
}
