//! Per-connection rate limits: a token bucket for every kind of frame a
//! client can send, and strikes that close a client which keeps going
//! after it was told to slow down.
//!
//! Every inbound frame first takes a token from the connection's overall
//! bucket (checked before the frame is even parsed), then one from its
//! kind's bucket. A refused frame gets `pusher:error` 4301 (documents: a
//! `doc-error` `rate_limited`) and costs a strike; more than
//! `rate_limit_strikes` strikes within [`STRIKE_WINDOW`] close the
//! connection with 4301. The rates are the app's config (`AppConfig`,
//! docs/configuration.md), never constants here.

use std::time::{Duration, Instant};

use sealcast_core::protocol::{client, directory, doc, history};

use crate::config::AppConfig;
pub use crate::rate::TokenBucket;

/// The window strikes are counted over.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);

/// The kinds of client frames, each with its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `pusher:subscribe` and `pusher:unsubscribe`.
    Subscribe,
    /// `pusher:signin`.
    Signin,
    /// `client-*` events.
    ClientEvent,
    /// `pusher:ping` and WebSocket pings.
    Ping,
    /// `sealcast:doc-submit`.
    DocSubmit,
    /// `sealcast:doc-join`.
    DocJoin,
    /// `sealcast:doc-digest`.
    DocDigest,
    /// `sealcast:doc-snapshot`.
    DocSnapshot,
    /// `sealcast:history`.
    History,
    /// `sealcast:kp-*` (the key directory).
    KeyDirectory,
    /// Anything else: pongs, binary, malformed or unknown frames.
    Other,
}

impl FrameKind {
    /// The kind of a Pusher event name.
    pub fn of_event(event: &str) -> FrameKind {
        match event {
            client::SUBSCRIBE | client::UNSUBSCRIBE => FrameKind::Subscribe,
            client::SIGNIN => FrameKind::Signin,
            client::PING => FrameKind::Ping,
            doc::SUBMIT => FrameKind::DocSubmit,
            doc::JOIN => FrameKind::DocJoin,
            doc::DIGEST => FrameKind::DocDigest,
            doc::SNAPSHOT => FrameKind::DocSnapshot,
            history::READ => FrameKind::History,
            directory::PUBLISH | directory::FETCH | directory::CLEAR => FrameKind::KeyDirectory,
            event if event.starts_with(client::CLIENT_EVENT_PREFIX) => FrameKind::ClientEvent,
            _ => FrameKind::Other,
        }
    }

    /// A name for messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Subscribe => "subscribe",
            FrameKind::Signin => "signin",
            FrameKind::ClientEvent => "client event",
            FrameKind::Ping => "ping",
            FrameKind::DocSubmit => "document op",
            FrameKind::DocJoin => "document join",
            FrameKind::DocDigest => "document digest",
            FrameKind::DocSnapshot => "document snapshot",
            FrameKind::History => "history read",
            FrameKind::KeyDirectory => "key directory request",
            FrameKind::Other => "other frame",
        }
    }
}

/// What the connection does with a frame after the rate check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within its budget: handle it.
    Allow,
    /// Over: refuse it (4301) and keep the connection.
    Refuse,
    /// Over, and too often: close the connection (4301).
    Close,
}

/// The buckets of one connection.
#[derive(Debug)]
pub struct FrameLimits {
    all: TokenBucket,
    subscribe: TokenBucket,
    signin: TokenBucket,
    client_event: TokenBucket,
    ping: TokenBucket,
    doc_submit: TokenBucket,
    doc_join: TokenBucket,
    doc_digest: TokenBucket,
    doc_snapshot: TokenBucket,
    history: TokenBucket,
    key_directory: TokenBucket,
    other: TokenBucket,
    /// Presence member changes (each a broadcast to every member).
    presence: TokenBucket,
    strikes: TokenBucket,
}

/// One second's worth of tokens, and at least `floor`.
fn per_second(rate: u32, floor: u32) -> TokenBucket {
    let rate = f64::from(rate);
    TokenBucket::new(rate, rate.max(f64::from(floor)))
}

impl FrameLimits {
    /// Buckets at the app's rates.
    pub fn new(limits: &AppConfig) -> FrameLimits {
        let strikes = f64::from(limits.rate_limit_strikes);
        FrameLimits {
            all: per_second(limits.frames_per_second, 1),
            subscribe: per_second(limits.subscriptions_per_second, 1),
            signin: per_second(limits.signins_per_second, 1),
            client_event: per_second(limits.client_events_per_second, 1),
            ping: per_second(limits.pings_per_second, 1),
            doc_submit: per_second(limits.doc_ops_per_second, 1),
            doc_join: per_second(limits.doc_joins_per_second, 1),
            doc_digest: per_second(limits.doc_digests_per_second, 1),
            doc_snapshot: per_second(limits.doc_snapshots_per_second, 1),
            history: per_second(limits.history_reads_per_second, 1),
            key_directory: per_second(limits.key_directory.requests_per_second, 1),
            other: per_second(limits.other_frames_per_second, 1),
            presence: per_second(limits.presence_changes_per_second, 1),
            strikes: TokenBucket::new(strikes / STRIKE_WINDOW.as_secs_f64(), strikes),
        }
    }

    /// The overall bucket, before a frame is parsed.
    pub fn frame(&mut self, now: Instant) -> Verdict {
        let allowed = self.all.allow(now);
        self.verdict(allowed, now)
    }

    /// The bucket of a frame's kind.
    pub fn kind(&mut self, kind: FrameKind, now: Instant) -> Verdict {
        let bucket = match kind {
            FrameKind::Subscribe => &mut self.subscribe,
            FrameKind::Signin => &mut self.signin,
            FrameKind::ClientEvent => &mut self.client_event,
            FrameKind::Ping => &mut self.ping,
            FrameKind::DocSubmit => &mut self.doc_submit,
            FrameKind::DocJoin => &mut self.doc_join,
            FrameKind::DocDigest => &mut self.doc_digest,
            FrameKind::DocSnapshot => &mut self.doc_snapshot,
            FrameKind::History => &mut self.history,
            FrameKind::KeyDirectory => &mut self.key_directory,
            FrameKind::Other => &mut self.other,
        };
        let allowed = bucket.allow(now);
        self.verdict(allowed, now)
    }

    /// The presence bucket: a subscription or unsubscription that would
    /// add or remove a member.
    pub fn presence_change(&mut self, now: Instant) -> Verdict {
        let allowed = self.presence.allow(now);
        self.verdict(allowed, now)
    }

    /// Counts a refusal that was not a rate limit (a failed authorization);
    /// false when the strikes are used up and the connection must close.
    pub fn strike(&mut self, now: Instant) -> bool {
        self.strikes.allow(now)
    }

    fn verdict(&mut self, allowed: bool, now: Instant) -> Verdict {
        if allowed {
            Verdict::Allow
        } else if self.strikes.allow(now) {
            Verdict::Refuse
        } else {
            Verdict::Close
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_turn_into_a_close_after_the_strikes() {
        let mut limits = AppConfig::new("a", "k", "s");
        (limits.doc_digests_per_second, limits.rate_limit_strikes) = (2, 3);
        let mut frames = FrameLimits::new(&limits);
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..7).map(|_| frames.kind(FrameKind::DocDigest, t0)).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Allow, Allow, Refuse, Refuse, Refuse, Close, Close]);
        // Other kinds have their own buckets, but strikes are shared.
        assert_eq!(frames.kind(FrameKind::Ping, t0), Allow);
        // Strikes come back over the window.
        let later = t0 + STRIKE_WINDOW;
        assert_eq!(frames.kind(FrameKind::DocDigest, later), Allow);
    }

    #[test]
    fn every_event_name_has_a_kind() {
        assert_eq!(FrameKind::of_event("pusher:unsubscribe"), FrameKind::Subscribe);
        assert_eq!(FrameKind::of_event("client-typing"), FrameKind::ClientEvent);
        assert_eq!(FrameKind::of_event("sealcast:doc-snapshot"), FrameKind::DocSnapshot);
        assert_eq!(FrameKind::of_event("sealcast:history"), FrameKind::History);
        assert_eq!(FrameKind::of_event("pusher:pong"), FrameKind::Other);
        assert_eq!(FrameKind::of_event("anything"), FrameKind::Other);
    }
}
