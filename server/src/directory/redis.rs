//! [`RedisDirectory`]: the key directory of cluster mode, one for every
//! node. Each call is one Lua script (atomic in Redis).
//!
//! Keys per app (`{app}` as given; `{n}` the user id's length, so no two
//! (user, device) pairs share a key):
//! - `sealcast:kd:{app}:bytes` — bytes kept for the app
//! - `sealcast:kd:{app}:u:{user}` — set of the user's device ids
//! - `sealcast:kd:{app}:p:{n}:{user}:{device}` — list of packages, oldest first
//! - `sealcast:kd:{app}:l:{n}:{user}:{device}` — the last-resort package
//!
//! Durability is Redis's (docs/scaling.md): a Redis that loses its data
//! loses the packages, and devices publish again when they reconnect.

use redis::Script;

use super::{
    DeviceState, DirectoryStore, DirectoryStoreError, KeyDirectoryConfig, NewPackages,
    PACKAGE_OVERHEAD_BYTES, Taken,
};
use crate::redis_sync::SyncRedis;

/// Key names shared by the scripts. ARGV: prefix, user, device, …
const KEYS: &str = r"
local prefix, user, device = ARGV[1], ARGV[2], ARGV[3]
local pair = string.len(user) .. ':' .. user .. ':' .. device
local list, lastk = prefix .. 'p:' .. pair, prefix .. 'l:' .. pair
local devices, bytesk = prefix .. 'u:' .. user, prefix .. 'bytes'
";

/// ARGV: …, overhead, max per device, max devices, max bytes, has last
/// resort ('1'/'0'), last resort, packages…. Returns {status, count,
/// last resort 1/0}; status 0 stored, 1 too many packages, 2 too many
/// devices, 3 quota.
const PUBLISH: &str = r"
local overhead, per_device, max_devices, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local has_last, last = ARGV[8] == '1', ARGV[9]
local count = redis.call('LLEN', list)
local old_last = redis.call('GET', lastk)
local n = #ARGV - 9
if count + n > per_device then return {1, count, old_last and 1 or 0} end
local known = redis.call('SISMEMBER', devices, device) == 1
local adds_device = (not known) and (n > 0 or has_last)
if adds_device and redis.call('SCARD', devices) >= max_devices then return {2, count, 0} end
if (not known) and (not adds_device) then return {0, 0, 0} end
local added = 0
for i = 10, #ARGV do added = added + string.len(ARGV[i]) + overhead end
local replaced = 0
if has_last then
  added = added + string.len(last) + overhead
  if old_last then replaced = string.len(old_last) + overhead end
end
local bytes = tonumber(redis.call('GET', bytesk) or '0')
local after = bytes + added - replaced
if after > bytes and after > max_bytes then return {3, count, old_last and 1 or 0} end
if n > 0 then redis.call('RPUSH', list, unpack(ARGV, 10)) end
if has_last then redis.call('SET', lastk, last) end
if adds_device then redis.call('SADD', devices, device) end
redis.call('SET', bytesk, after)
return {0, count + n, (has_last or old_last) and 1 or 0}
";

/// ARGV: …, overhead. Returns {} or {package, last resort '1'/'0'}.
const FETCH: &str = r"
local overhead = tonumber(ARGV[4])
local package = redis.call('LPOP', list)
if package then
  redis.call('DECRBY', bytesk, string.len(package) + overhead)
  return {package, '0'}
end
local last = redis.call('GET', lastk)
if last then return {last, '1'} end
return {}
";

/// ARGV: …, overhead.
const CLEAR: &str = r"
local overhead = tonumber(ARGV[4])
local freed = 0
for _, package in ipairs(redis.call('LRANGE', list, 0, -1)) do freed = freed + string.len(package) + overhead end
local last = redis.call('GET', lastk)
if last then freed = freed + string.len(last) + overhead end
redis.call('DEL', list, lastk)
redis.call('SREM', devices, device)
if freed > 0 then redis.call('DECRBY', bytesk, freed) end
return freed
";

/// The cluster's key directory.
#[derive(Debug)]
pub struct RedisDirectory {
    redis: SyncRedis,
    publish: Script,
    fetch: Script,
    clear: Script,
}

fn backend(err: &redis::RedisError) -> DirectoryStoreError {
    DirectoryStoreError::Backend(err.to_string())
}

fn prefix(app: &str) -> String {
    format!("sealcast:kd:{app}:")
}

impl RedisDirectory {
    /// The directory on the Redis at `url`.
    pub fn open(url: &str) -> Result<RedisDirectory, DirectoryStoreError> {
        Ok(RedisDirectory {
            redis: SyncRedis::open(url).map_err(|e| backend(&e))?,
            publish: Script::new(&format!("{KEYS}{PUBLISH}")),
            fetch: Script::new(&format!("{KEYS}{FETCH}")),
            clear: Script::new(&format!("{KEYS}{CLEAR}")),
        })
    }
}

impl DirectoryStore for RedisDirectory {
    fn publish(
        &self,
        app: &str,
        new: &NewPackages<'_>,
        limits: &KeyDirectoryConfig,
    ) -> Result<DeviceState, DirectoryStoreError> {
        let NewPackages { user, device, packages, last_resort } = *new;
        let (status, count, last): (u8, usize, u8) = self
            .redis
            .with_conn(|conn| {
                let mut call = self.publish.prepare_invoke();
                call.arg(prefix(app))
                    .arg(user)
                    .arg(device)
                    .arg(PACKAGE_OVERHEAD_BYTES)
                    .arg(limits.max_packages_per_device)
                    .arg(limits.max_devices_per_user)
                    .arg(limits.max_bytes)
                    .arg(if last_resort.is_some() { "1" } else { "0" })
                    .arg(last_resort.unwrap_or(""));
                for package in packages {
                    call.arg(package);
                }
                call.invoke(conn)
            })
            .map_err(|e| backend(&e))?;
        match status {
            0 => Ok(DeviceState { count, last_resort: last == 1 }),
            1 => Err(DirectoryStoreError::TooManyPackages(count)),
            2 => Err(DirectoryStoreError::TooManyDevices),
            _ => Err(DirectoryStoreError::Quota),
        }
    }

    fn fetch(&self, app: &str, user: &str, device: &str) -> Result<Option<Taken>, DirectoryStoreError> {
        let taken: Vec<String> = self
            .redis
            .with_conn(|conn| {
                self.fetch.arg(prefix(app)).arg(user).arg(device).arg(PACKAGE_OVERHEAD_BYTES).invoke(conn)
            })
            .map_err(|e| backend(&e))?;
        let mut taken = taken.into_iter();
        let (Some(package), Some(last)) = (taken.next(), taken.next()) else { return Ok(None) };
        Ok(Some(Taken { package, last_resort: last == "1" }))
    }

    fn clear(&self, app: &str, user: &str, device: &str) -> Result<(), DirectoryStoreError> {
        let _freed: i64 = self
            .redis
            .with_conn(|conn| {
                self.clear.arg(prefix(app)).arg(user).arg(device).arg(PACKAGE_OVERHEAD_BYTES).invoke(conn)
            })
            .map_err(|e| backend(&e))?;
        Ok(())
    }

    fn app_bytes(&self, app: &str) -> Result<usize, DirectoryStoreError> {
        let bytes: Option<usize> = self
            .redis
            .with_conn(|conn| redis::cmd("GET").arg(format!("{}bytes", prefix(app))).query(conn))
            .map_err(|e| backend(&e))?;
        Ok(bytes.unwrap_or(0))
    }
}
