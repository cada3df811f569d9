//! Which node sends a lifecycle webhook in a cluster ([`HookClaims`] on
//! Redis): each channel and each presence member has a Redis set of the
//! nodes where it is, changed by one script per event. A node that joins
//! an empty set sends the "appeared" webhook (`channel_occupied`,
//! `member_added`); a node that leaves a set empty sends the "vanished"
//! one (`channel_vacated`, `member_removed`); the others send nothing. The
//! script runs atomically in Redis, so two nodes never both send, nor both
//! skip. A dead node's entries are removed by the reaper, and the node
//! whose removal empties a set sends the webhook the dead node could not.
//!
//! Keys: `sealcast:hooks:{app}:channel:{channel}` and
//! `sealcast:hooks:{app}:member:{channel}:{user}` (channel names hold no
//! `:`), sets of node ids, gone when empty.

use std::future::Future;
use std::pin::Pin;

use redis::Script;
use redis::aio::ConnectionManager;

use super::ClusterError;
use crate::warn_throttled;
use crate::webhooks::{ClaimSubject, HookClaims, HookEvent};

/// Adds (ARGV[2] = "1") or removes the node ARGV[1] in the set KEYS[1];
/// 1 when this node sends the webhook: it made the set non-empty, or the
/// set is empty after its removal (also when it was not in it: after a
/// Redis restart lost the sets, a "vanished" is sent rather than lost).
const CLAIM: &str = r#"
if ARGV[2] == "1" then
  local added = redis.call('SADD', KEYS[1], ARGV[1])
  if added == 1 and redis.call('SCARD', KEYS[1]) == 1 then return 1 end
  return 0
end
local removed = redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 and (removed == 1 or ARGV[3] == "1") then return 1 end
return 0
"#;

/// The cluster's webhook claims, on Redis.
#[derive(Debug)]
pub struct RedisClaims {
    conn: ConnectionManager,
    node_id: String,
    script: Script,
}

fn app_prefix(app: &str) -> String {
    format!("sealcast:hooks:{app}:")
}

fn key(app: &str, subject: ClaimSubject<'_>) -> String {
    match subject {
        ClaimSubject::Channel(channel) => format!("{}channel:{channel}", app_prefix(app)),
        ClaimSubject::Member { channel, user_id } => format!("{}member:{channel}:{user_id}", app_prefix(app)),
    }
}

/// The subject a key names (`None` for a key that is not one).
fn subject_of<'a>(app: &str, key: &'a str) -> Option<ClaimSubject<'a>> {
    let rest = key.strip_prefix(&app_prefix(app))?;
    if let Some(channel) = rest.strip_prefix("channel:") {
        return Some(ClaimSubject::Channel(channel));
    }
    let (channel, user_id) = rest.strip_prefix("member:")?.split_once(':')?;
    Some(ClaimSubject::Member { channel, user_id })
}

impl RedisClaims {
    /// Claims for `node_id` over `conn`.
    pub fn new(conn: ConnectionManager, node_id: &str) -> RedisClaims {
        RedisClaims { conn, node_id: node_id.to_owned(), script: Script::new(CLAIM) }
    }

    /// One pipelined round trip: a claim per event that has one.
    async fn ask(&self, app: &str, events: &[HookEvent]) -> Result<Vec<bool>, ClusterError> {
        let mut pipe = redis::pipe();
        let mut asked = 0;
        for (subject, joins) in events.iter().filter_map(HookEvent::claim) {
            // EVAL, not EVALSHA: a pipeline cannot reload a script a
            // restarted Redis forgot, and the text is small.
            pipe.cmd("EVAL")
                .arg(CLAIM)
                .arg(1)
                .arg(key(app, subject))
                .arg(&self.node_id)
                .arg(u8::from(joins))
                .arg(1);
            asked += 1;
        }
        let answers: Vec<i64> =
            if asked == 0 { Vec::new() } else { pipe.query_async(&mut self.conn.clone()).await? };
        let mut answers = answers.into_iter();
        Ok(events.iter().map(|event| event.claim().is_none() || answers.next() == Some(1)).collect())
    }

    /// Removes dead `node` from every set of `app`; the webhooks whose
    /// subject it leaves empty, for this node to send (once in the cluster:
    /// the first remover is the one told).
    pub async fn forget_node(&self, app: &str, node: &str) -> Result<Vec<HookEvent>, ClusterError> {
        let mut conn = self.conn.clone();
        let keys = super::scan(&mut conn, &format!("{}*", app_prefix(app))).await?;
        let mut vanished = Vec::new();
        for key in &keys {
            let Some(subject) = subject_of(app, key) else { continue };
            let sends: i64 = self.script.key(key).arg(node).arg(0).arg(0).invoke_async(&mut conn).await?;
            if sends == 1 {
                vanished.push(HookEvent::vanished(subject));
            }
        }
        Ok(vanished)
    }
}

impl HookClaims for RedisClaims {
    fn claim<'a>(
        &'a self,
        app: &'a str,
        events: &'a [HookEvent],
    ) -> Pin<Box<dyn Future<Output = Vec<bool>> + Send + 'a>> {
        Box::pin(async move {
            self.ask(app, events).await.unwrap_or_else(|err| {
                warn_throttled!(error = %err, "webhook claims unreachable: sending (a webhook may come twice)");
                vec![true; events.len()]
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_subject_and_back() {
        for subject in [
            ClaimSubject::Channel("presence-room"),
            ClaimSubject::Member { channel: "presence-room", user_id: "ann:with:colons" },
        ] {
            assert_eq!(subject_of("app-1", &key("app-1", subject)), Some(subject));
        }
        assert_eq!(subject_of("app-1", "sealcast:hooks:app-2:channel:x"), None);
        assert_eq!(subject_of("app-1", "sealcast:hooks:app-1:other:x"), None);
    }
}
