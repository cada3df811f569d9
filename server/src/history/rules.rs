//! Which channels keep history and how much: an app's `[[apps.history]]`
//! rules (docs/configuration.md).

use std::time::Duration;

use serde::Deserialize;

/// One rule: channels matching any of `channels` keep their events within
/// these bounds (the first matching rule of the app applies).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRule {
    /// Channel name patterns; `*` matches any run of characters
    /// (`private-chat-*`, `presence-room-*`, `*`).
    pub channels: Vec<String>,
    /// Most events kept per channel (older ones are dropped first).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Most bytes kept per channel (names, data and user ids, plus 64
    /// bytes per event).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// How long an event is kept, in seconds.
    #[serde(default = "default_ttl_secs")]
    pub ttl_secs: u64,
}

fn default_max_events() -> usize {
    100
}
fn default_max_bytes() -> usize {
    1024 * 1024
}
fn default_ttl_secs() -> u64 {
    24 * 3600
}

impl HistoryRule {
    /// A rule for `patterns` with the default bounds.
    pub fn new(patterns: &[&str]) -> HistoryRule {
        HistoryRule {
            channels: patterns.iter().map(|p| (*p).to_owned()).collect(),
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            ttl_secs: default_ttl_secs(),
        }
    }

    /// Whether `channel` matches one of the rule's patterns.
    pub fn matches(&self, channel: &str) -> bool {
        self.channels.iter().any(|pattern| glob(pattern.as_bytes(), channel.as_bytes()))
    }

    /// Why the rule is unusable, if it is.
    pub fn problem(&self) -> Option<&'static str> {
        if self.channels.is_empty() || self.channels.iter().any(String::is_empty) {
            return Some("a history rule needs non-empty `channels` patterns");
        }
        if self.max_events == 0 || self.max_bytes == 0 || self.ttl_secs == 0 {
            return Some("history `max_events`, `max_bytes` and `ttl_secs` must be positive");
        }
        None
    }
}

/// The bounds one stream is kept within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Most events in the stream.
    pub max_events: usize,
    /// Most bytes in the stream.
    pub max_bytes: usize,
    /// Oldest event kept.
    pub ttl: Duration,
    /// Most bytes of all the app's streams (the oldest events of the app
    /// go first).
    pub app_max_bytes: usize,
}

/// How long a cache channel keeps its last event (Pusher's 30 minutes).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

impl StreamLimits {
    /// A cache channel's stream no rule names: its last event, for
    /// [`CACHE_TTL`], of up to `max_event_bytes` of data.
    pub fn cache(max_event_bytes: usize, app_max_bytes: usize) -> StreamLimits {
        StreamLimits {
            max_events: 1,
            // The event's name (≤ 200), user id (≤ 256) and overhead too.
            max_bytes: max_event_bytes + 1024,
            ttl: CACHE_TTL,
            app_max_bytes,
        }
    }

    /// The limits of a stream under `rule` in an app capped at
    /// `app_max_bytes`.
    pub fn of(rule: &HistoryRule, app_max_bytes: usize) -> StreamLimits {
        StreamLimits {
            max_events: rule.max_events,
            max_bytes: rule.max_bytes,
            ttl: Duration::from_secs(rule.ttl_secs),
            app_max_bytes,
        }
    }
}

/// `*`-glob match, iterative (backtracking to the last `*` only: linear
/// enough for channel names of at most 200 bytes).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_globs() {
        let rule = HistoryRule::new(&["private-chat-*", "presence-*-room", "exact"]);
        for yes in ["private-chat-", "private-chat-42", "presence-a-room", "presence--room", "exact"] {
            assert!(rule.matches(yes), "{yes}");
        }
        for no in ["private-chat", "private-doc-1", "presence-a-rooms", "exact2", "xexact", ""] {
            assert!(!rule.matches(no), "{no}");
        }
        assert!(HistoryRule::new(&["*"]).matches("anything"));
        assert!(HistoryRule::new(&["a*b*c"]).matches("aXbYbZc"));
        assert!(!HistoryRule::new(&["a*b*c"]).matches("aXbYbZ"));
    }

    #[test]
    fn unusable_rules_are_named() {
        assert!(HistoryRule::new(&[]).problem().is_some());
        assert!(HistoryRule::new(&[""]).problem().is_some());
        assert!(HistoryRule { max_events: 0, ..HistoryRule::new(&["*"]) }.problem().is_some());
        assert!(HistoryRule::new(&["*"]).problem().is_none());
    }
}
