//! [`RedisHistory`]: the history store of cluster mode. Every node keeps
//! and reads through the same Redis, so a channel has one stream — one
//! epoch, one offset sequence — whichever node an event was published on
//! or a client reads from. An append is one Lua script (atomic in Redis).
//!
//! Keys per app (`{app}` and the channel as given):
//! - `sealcast:hist:{app}:meta:{channel}` — hash `epoch`, `head`, `bytes`
//! - `sealcast:hist:{app}:list:{channel}` — list of kept events, oldest
//!   first, each JSON `{o: offset, e: event, d: data text, u: user id or
//!   "", t: time ms, c: cost, s: the app's append sequence}`
//! - `sealcast:hist:{app}:app` — hash `bytes` (kept for the app), `seq`
//! - `sealcast:hist:{app}:order` — sorted set: channel → `s` of its oldest
//!   kept event (the app's byte cap drops the lowest first)
//!
//! A stream whose `meta` is gone (evicted, or Redis restarted without its
//! data) starts a new epoch, dropping anything left of the old one: its
//! readers are told `epoch_changed`, never handed offsets given twice.
//! Durability is Redis's (docs/scaling.md).

use redis::Script;
use sealcast_core::protocol::history::{HistoryEvent, HistoryPage, Position, Read};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::page::{self, PageBounds, StreamState, Window};
use super::{Broadcast, HistoryStore, HistoryStoreError, NewEvent, StreamLimits, new_epoch, ttl_ms};
use crate::redis_sync::SyncRedis;

/// Shared by the scripts: key names and dropping a stream's oldest event
/// (keeping the stream's and the app's bytes and the app's order right).
const COMMON: &str = r"
local prefix = ARGV[1]
local appk = prefix .. 'app'
local order = prefix .. 'order'
local function meta_of(ch) return prefix .. 'meta:' .. ch end
local function list_of(ch) return prefix .. 'list:' .. ch end
local function drop_oldest(ch)
  local raw = redis.call('LPOP', list_of(ch))
  if not raw then redis.call('ZREM', order, ch); return false end
  local ev = cjson.decode(raw)
  redis.call('HINCRBY', meta_of(ch), 'bytes', -ev.c)
  redis.call('HINCRBY', appk, 'bytes', -ev.c)
  local nxt = redis.call('LINDEX', list_of(ch), 0)
  if nxt then redis.call('ZADD', order, cjson.decode(nxt).s, ch) else redis.call('ZREM', order, ch) end
  return true
end
local function expire(ch, cutoff)
  while true do
    local first = redis.call('LINDEX', list_of(ch), 0)
    if not first or cjson.decode(first).t >= cutoff then return end
    drop_oldest(ch)
  end
end
";

/// ARGV: prefix, channel, event, data, user ('' none), now, cost,
/// max_events, max_bytes, ttl_ms, app_max_bytes, new epoch; then, to
/// publish the kept event on the cluster bus ('' not to): bus channel,
/// node, app, frame without its closing brace, except socket ('' none),
/// its notice without its closing brace. Returns {epoch, offset}.
const APPEND: &str = r#"
local channel = ARGV[2]
local meta, list = meta_of(channel), list_of(channel)
local now = tonumber(ARGV[6])
expire(channel, now - tonumber(ARGV[10]))
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  -- A new stream: nothing of an old one may remain.
  for _, raw in ipairs(redis.call('LRANGE', list, 0, -1)) do
    redis.call('HINCRBY', appk, 'bytes', -cjson.decode(raw).c)
  end
  redis.call('DEL', list)
  redis.call('ZREM', order, channel)
  epoch = ARGV[12]
  redis.call('HSET', meta, 'epoch', epoch, 'head', 0, 'bytes', 0)
end
local head = redis.call('HINCRBY', meta, 'head', 1)
local seq = redis.call('HINCRBY', appk, 'seq', 1)
local cost = tonumber(ARGV[7])
redis.call('RPUSH', list, cjson.encode({o = head, e = ARGV[3], d = ARGV[4], u = ARGV[5], t = now, c = cost, s = seq}))
redis.call('HINCRBY', meta, 'bytes', cost)
redis.call('HINCRBY', appk, 'bytes', cost)
if redis.call('LLEN', list) == 1 then redis.call('ZADD', order, seq, channel) end
while redis.call('LLEN', list) > tonumber(ARGV[8]) or tonumber(redis.call('HGET', meta, 'bytes')) > tonumber(ARGV[9]) do
  if not drop_oldest(channel) then break end
end
while tonumber(redis.call('HGET', appk, 'bytes') or '0') > tonumber(ARGV[11]) do
  local victim = redis.call('ZRANGE', order, 0, 0)[1]
  if not victim then break end
  drop_oldest(victim)
  -- A stream left with nothing is forgotten (its next event starts a new epoch).
  if redis.call('LLEN', list_of(victim)) == 0 then redis.call('DEL', meta_of(victim)) end
end
if ARGV[13] and ARGV[13] ~= '' then
  -- Published here, in the order kept: every node delivers kept events
  -- in one order (the frames end with their position).
  local position = ',"offset":' .. head .. ',"epoch":"' .. epoch .. '"}'
  local message = {t = 'kept', channel = channel, frame = ARGV[16] .. position}
  if ARGV[17] ~= '' then
    message.except = ARGV[17]
    message.notice = ARGV[18] .. position
  end
  redis.call('PUBLISH', ARGV[13], cjson.encode({node = ARGV[14], app = ARGV[15], message = message}))
end
return {epoch, head}
"#;

/// ARGV: prefix, channel, cutoff. Drops events older than the cutoff;
/// returns {epoch or '', head, offset of the oldest kept (0: none)}.
const STATE: &str = r"
local channel = ARGV[2]
expire(channel, tonumber(ARGV[3]))
local kept = redis.call('HMGET', meta_of(channel), 'epoch', 'head')
local first = redis.call('LINDEX', list_of(channel), 0)
local oldest = 0
if first then oldest = cjson.decode(first).o end
return {kept[1] or '', tonumber(kept[2] or '0'), oldest}
";

/// Streams in the cluster's Redis.
#[derive(Debug)]
pub struct RedisHistory {
    redis: SyncRedis,
    append: Script,
    state: Script,
}

/// A kept event as the scripts store it.
#[derive(Deserialize)]
struct Stored {
    o: u64,
    e: String,
    d: String,
    u: String,
    t: u64,
    c: usize,
}

fn backend(err: &dyn std::fmt::Display) -> HistoryStoreError {
    HistoryStoreError::Backend(format!("redis: {err}"))
}

fn prefix(app: &str) -> String {
    format!("sealcast:hist:{app}:")
}

/// Reads racing a trim are retried this often before the read fails.
const READ_ATTEMPTS: usize = 3;

impl RedisHistory {
    /// A store on the Redis at `url` (connects lazily, reconnects after
    /// errors).
    pub fn open(url: &str) -> Result<RedisHistory, HistoryStoreError> {
        Ok(RedisHistory {
            redis: SyncRedis::open(url).map_err(|e| backend(&e))?,
            append: Script::new(&format!("{COMMON}{APPEND}")),
            state: Script::new(&format!("{COMMON}{STATE}")),
        })
    }

    fn stream(&self, app: &str, channel: &str, cutoff: u64) -> Result<StreamState, HistoryStoreError> {
        let (epoch, head, oldest): (String, u64, u64) = self
            .redis
            .with_conn(|conn| self.state.arg(prefix(app)).arg(channel).arg(cutoff).invoke(conn))
            .map_err(|e| backend(&e))?;
        Ok(StreamState { epoch, head, first: (oldest > 0).then_some(oldest) })
    }

    /// Runs the append script (publishing the kept event when told to).
    fn keep(
        &self,
        app: &str,
        channel: &str,
        event: NewEvent<'_>,
        limits: &StreamLimits,
        now_ms: u64,
        broadcast: Option<&Broadcast<'_>>,
    ) -> Result<Position, HistoryStoreError> {
        let open = |frame: &'_ str| frame.strip_suffix('}').unwrap_or(frame).to_owned();
        let (bus, node, bus_app, frame, except, notice) = match broadcast {
            None => Default::default(),
            Some(b) => (
                b.bus_channel.to_owned(),
                b.node.to_owned(),
                b.app.to_owned(),
                open(b.frame),
                b.except.map_or_else(String::new, |(socket, _)| socket.to_owned()),
                b.except.map_or_else(String::new, |(_, notice)| open(notice)),
            ),
        };
        let (epoch, offset): (String, u64) = self
            .redis
            .with_conn(|conn| {
                self.append
                    .arg(prefix(app))
                    .arg(channel)
                    .arg(event.event)
                    .arg(event.data.map_or("null", RawValue::get))
                    .arg(event.user_id.unwrap_or(""))
                    .arg(now_ms)
                    .arg(event.cost())
                    .arg(limits.max_events)
                    .arg(limits.max_bytes)
                    .arg(ttl_ms(limits.ttl))
                    .arg(limits.app_max_bytes)
                    .arg(new_epoch())
                    .arg(&bus)
                    .arg(&node)
                    .arg(&bus_app)
                    .arg(&frame)
                    .arg(&except)
                    .arg(&notice)
                    .invoke(conn)
            })
            .map_err(|e| backend(&e))?;
        Ok(Position { offset, epoch })
    }

    /// The kept events at list indexes `start..=stop`, with their costs.
    fn range(
        &self,
        app: &str,
        channel: &str,
        start: i64,
        stop: i64,
    ) -> Result<Vec<(HistoryEvent, usize)>, HistoryStoreError> {
        let list = format!("{}list:{channel}", prefix(app));
        let raw: Vec<String> = self
            .redis
            .with_conn(|conn| redis::cmd("LRANGE").arg(&list).arg(start).arg(stop).query(conn))
            .map_err(|e| backend(&e))?;
        raw.iter()
            .map(|raw| {
                let stored: Stored = serde_json::from_str(raw).map_err(|e| backend(&e))?;
                let data = RawValue::from_string(stored.d).map_err(|e| backend(&e))?;
                let user_id = (!stored.u.is_empty()).then_some(stored.u);
                let event =
                    HistoryEvent { offset: stored.o, event: stored.e, data, user_id, time_ms: stored.t };
                Ok((event, stored.c))
            })
            .collect()
    }
}

impl HistoryStore for RedisHistory {
    fn append(
        &self,
        app: &str,
        channel: &str,
        event: NewEvent<'_>,
        limits: &StreamLimits,
        now_ms: u64,
    ) -> Result<Position, HistoryStoreError> {
        self.keep(app, channel, event, limits, now_ms, None)
    }

    fn append_broadcast(
        &self,
        app: &str,
        channel: &str,
        event: NewEvent<'_>,
        limits: &StreamLimits,
        now_ms: u64,
        broadcast: &Broadcast<'_>,
    ) -> Result<Position, HistoryStoreError> {
        self.keep(app, channel, event, limits, now_ms, Some(broadcast))
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
        let cutoff = now_ms.saturating_sub(ttl_ms(limits.ttl));
        let count = i64::try_from(bounds.events).unwrap_or(i64::MAX);
        for _ in 0..READ_ATTEMPTS {
            let state = self.stream(app, channel, cutoff)?;
            let (window, gap) = page::plan(read, &state)?;
            let Some(first) = state.first else {
                return Ok(page::finish(read, state, window, gap, Vec::new()));
            };
            let first = i64::try_from(first).unwrap_or(i64::MAX);
            let at = |offset: u64| i64::try_from(offset).unwrap_or(i64::MAX).saturating_sub(first);
            // The list holds consecutive offsets from `first`: offsets map to
            // indexes, unless a trim ran since the state was read (then
            // the offsets do not match, and the read runs again).
            let (start, stop, expected) = match window {
                Window::After(after) => {
                    let start = at(after.saturating_add(1)).max(0);
                    (start, start.saturating_add(count - 1), start + first)
                }
                Window::Before(before) => {
                    let stop = at(before).saturating_sub(1);
                    if stop < 0 {
                        return Ok(page::finish(read, state, window, gap, Vec::new()));
                    }
                    (
                        stop.saturating_sub(count - 1).max(0),
                        stop,
                        stop.saturating_sub(count - 1).max(0) + first,
                    )
                }
            };
            let kept = self.range(app, channel, start, stop)?;
            let consecutive = kept.iter().enumerate().all(|(i, (event, _))| {
                i64::try_from(event.offset).is_ok_and(|offset| offset == expected + i as i64)
            });
            if !consecutive {
                continue;
            }
            let (mut events, mut bytes) = (Vec::new(), 0);
            let ordered: Box<dyn Iterator<Item = (HistoryEvent, usize)>> = match window {
                Window::After(_) => Box::new(kept.into_iter()),
                Window::Before(_) => Box::new(kept.into_iter().rev()),
            };
            for (event, cost) in ordered {
                if event.time_ms < cutoff || !page::fits(bounds, events.len(), bytes, cost) {
                    break;
                }
                bytes += cost;
                events.push(event);
            }
            if let Window::Before(_) = window {
                events.reverse();
            }
            return Ok(page::finish(read, state, window, gap, events));
        }
        Err(HistoryStoreError::Backend("redis: the stream changed during every read attempt; retry".into()))
    }

    fn app_bytes(&self, app: &str) -> usize {
        let key = format!("{}app", prefix(app));
        self.redis
            .with_conn(|conn| redis::cmd("HGET").arg(&key).arg("bytes").query::<Option<usize>>(conn))
            .ok()
            .flatten()
            .unwrap_or(0)
    }
}
