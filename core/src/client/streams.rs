//! Channel streams as the client follows them (docs/history.md): the last
//! position delivered per channel with history, and the catch-up that
//! reads what was missed — after a resubscription, or when a live event
//! arrives past a gap — so the app gets every event exactly once, in
//! stream order, and is told the outcome per channel.
//!
//! While a catch-up runs, live events of its channel are held; when the
//! last page is delivered they follow, duplicates dropped by offset. What
//! cannot be recovered (trimmed, another epoch, refused, no answer) is
//! said ([`CatchUpOutcome`]), never a silent gap. Sans-IO like the rest:
//! the machine feeds it and carries out what [`Streams::poll`] returns.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use serde_json::Value;

use super::held::Inbound;
use crate::protocol::client::CLIENT_EVENT_PREFIX;
use crate::protocol::event::parse_data;
use crate::protocol::history::{
    Gap, HistoryError, HistoryErrorCode, HistoryEvent, HistoryPage, MAX_PAGE_EVENTS, Position, Read,
};
use crate::protocol::server::EXCLUDED;
use crate::time::Instant;

/// How a catch-up ended, per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUpOutcome {
    /// Every missed event was delivered (`events` of them), in order, once.
    Complete {
        /// How many were missed and delivered.
        events: usize,
    },
    /// Events were lost to this client: the app should reload what the
    /// channel shows from its own source. The `events` still kept after
    /// the gap were delivered.
    Gap {
        /// Why: trimmed (`PositionExpired`) or another stream
        /// (`EpochChanged`).
        gap: Gap,
        /// How many kept events were delivered.
        events: usize,
    },
    /// The missed events could not be read; live events go on from the
    /// next one. The app should reload from its own source.
    Failed {
        /// Why.
        reason: CatchUpFailure,
        /// How many missed events were delivered before it failed.
        events: usize,
    },
}

/// Why a catch-up failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatchUpFailure {
    /// The server refused the read (after retries, when it said to retry).
    #[error("the server refused the history read: {message}")]
    Refused {
        /// Its code.
        code: HistoryErrorCode,
        /// Its message.
        message: String,
    },
    /// No answer within the catch-up timeout (a server without history,
    /// or a transport that dropped the request).
    #[error("no answer to the history read in time")]
    NoAnswer,
    /// More live events arrived during the catch-up than the machine holds.
    #[error("too many live events arrived during the catch-up")]
    TooManyHeld,
}

impl CatchUpFailure {
    /// A stable code for the bindings: the server's refusal code, or
    /// `no_answer`, `too_many_held`.
    pub fn code(&self) -> &str {
        match self {
            CatchUpFailure::Refused { code, .. } => code.as_str(),
            CatchUpFailure::NoAnswer => "no_answer",
            CatchUpFailure::TooManyHeld => "too_many_held",
        }
    }
}

/// What the machine must do for the streams.
#[derive(Debug)]
pub(crate) enum StreamOutput {
    /// Deliver this event (through the key-aware inbound path).
    Deliver(Inbound),
    /// Send this read on the channel.
    Read {
        /// The channel.
        channel: String,
        /// The request.
        read: Read,
    },
    /// Tell the app how a catch-up ended.
    Outcome {
        /// The channel.
        channel: String,
        /// How.
        outcome: CatchUpOutcome,
    },
}

/// How often a read the server said to retry (rate limited, store busy)
/// is sent again before the catch-up fails.
const READ_ATTEMPTS: u32 = 5;
/// The first retry's delay (doubling after each).
const FIRST_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct CatchUp {
    /// The request id of its reads.
    id: String,
    /// Live events that arrived meanwhile, in arrival order.
    held: Vec<Inbound>,
    /// Offsets this connection was told it skips (its own client events,
    /// publishes that excluded it): not delivered when a page has them.
    excluded: BTreeSet<u64>,
    /// Missed events delivered so far.
    delivered: usize,
    gap: Option<Gap>,
    /// Reads refused so far (transient refusals).
    attempts: u32,
    /// When to send the read again after a transient refusal.
    retry_at: Option<Instant>,
    /// When to give up waiting for an answer.
    deadline: Instant,
}

#[derive(Debug)]
struct Followed {
    /// The newest position delivered (or, offset 0, where the stream stood
    /// when nothing was delivered yet).
    last: Position,
    catch_up: Option<CatchUp>,
    /// Fingerprints of this client's own client events on the channel
    /// whose notice (`sealcast_excluded`, own) has not come yet, oldest
    /// first: a catch-up page holding one (its notice lost in a drop)
    /// does not hand it back.
    unconfirmed: VecDeque<u64>,
}

/// Most own events remembered per channel before their notices.
const MAX_UNCONFIRMED: usize = 256;

/// A client event's fingerprint: its name and its data as JSON text (the
/// relay carries client event data byte for byte).
fn fingerprint(event: &str, data: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    event.hash(&mut hasher);
    data.to_string().hash(&mut hasher);
    hasher.finish()
}

/// The streams of the channels with history the machine follows.
#[derive(Debug)]
pub(crate) struct Streams {
    followed: HashMap<String, Followed>,
    output: VecDeque<StreamOutput>,
    next_id: u64,
    max_held: usize,
    timeout: Duration,
}

/// How a live position relates to the last delivered one.
#[derive(Debug, PartialEq, Eq)]
enum Relation {
    /// Already delivered.
    Seen,
    /// The next one.
    Next,
    /// Past a gap (or in another stream).
    Ahead,
}

fn relation(last: &Position, position: &Position) -> Relation {
    if position.epoch == last.epoch {
        match position.offset {
            offset if offset <= last.offset => Relation::Seen,
            offset if offset == last.offset + 1 => Relation::Next,
            _ => Relation::Ahead,
        }
    } else if last.offset == 0 && position.offset == 1 {
        // Nothing was delivered of the old stream: the new one's first
        // event continues it.
        Relation::Next
    } else {
        Relation::Ahead
    }
}

fn inbound(channel: &str, event: HistoryEvent, epoch: &str) -> Inbound {
    let data = serde_json::from_str::<Value>(event.data.get()).ok();
    Inbound {
        channel: Some(channel.to_owned()),
        event: event.event,
        data: parse_data(data),
        user_id: event.user_id,
        position: Some(Position { offset: event.offset, epoch: epoch.to_owned() }),
    }
}

impl Streams {
    /// Streams holding at most `max_held` live events per catch-up, which
    /// fails after `timeout` without an answer.
    pub(crate) fn new(max_held: usize, timeout: Duration) -> Streams {
        Streams { followed: HashMap::new(), output: VecDeque::new(), next_id: 0, max_held, timeout }
    }

    /// The next thing to do.
    pub(crate) fn poll(&mut self) -> Option<StreamOutput> {
        self.output.pop_front()
    }

    /// When [`Streams::handle_timeout`] has something to do.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let times = self.followed.values().filter_map(|f| f.catch_up.as_ref());
        times.flat_map(|c| [c.retry_at, Some(c.deadline)]).flatten().min()
    }

    /// `channel` was subscribed (again); `head`: where its stream stands,
    /// when the server said (own link; `None` over an external transport
    /// or on a channel without history).
    pub(crate) fn subscribed(&mut self, channel: &str, head: Option<Position>, now: Instant) {
        match (self.followed.get_mut(channel), head) {
            (None, Some(head)) => {
                self.followed.insert(
                    channel.to_owned(),
                    Followed { last: head, catch_up: None, unconfirmed: VecDeque::new() },
                );
            }
            (None, None) => {}
            // Nothing published since what was delivered.
            (Some(followed), Some(head)) if followed.last == head && followed.catch_up.is_none() => {}
            // Missed something, or cannot tell (an external transport): read.
            (Some(_), _) => self.start(channel, now),
        }
    }

    /// This client sent `event` with `data` (as sent: sealed) on `channel`.
    pub(crate) fn sent(&mut self, channel: &str, event: &str, data: &Value) {
        if let Some(followed) = self.followed.get_mut(channel) {
            followed.unconfirmed.push_back(fingerprint(event, data));
            if followed.unconfirmed.len() > MAX_UNCONFIRMED {
                followed.unconfirmed.pop_front();
            }
        }
    }

    /// The app left `channel`: a later subscription starts afresh.
    pub(crate) fn unsubscribed(&mut self, channel: &str) {
        self.followed.remove(channel);
    }

    /// A live event with a position.
    pub(crate) fn live(&mut self, message: Inbound, now: Instant) {
        // A position this connection skips: its own client event, or a
        // publish that excluded it. It counts, but is not delivered.
        let excluded = message.event == EXCLUDED;
        let (Some(channel), Some(position)) = (message.channel.clone(), message.position.clone()) else {
            if !excluded {
                self.output.push_back(StreamOutput::Deliver(message));
            }
            return;
        };
        let Some(followed) = self.followed.get_mut(&channel) else {
            // The first event seen (an external transport does not say
            // where the stream stood at subscribe): follow from it.
            self.followed
                .insert(channel, Followed { last: position, catch_up: None, unconfirmed: VecDeque::new() });
            if !excluded {
                self.output.push_back(StreamOutput::Deliver(message));
            }
            return;
        };
        if let Some(catch_up) = &mut followed.catch_up {
            // (An own notice confirms its event when it is passed on again
            // after the catch-up.)
            if excluded && position.epoch == followed.last.epoch {
                catch_up.excluded.insert(position.offset);
            }
            catch_up.held.push(message);
            if catch_up.held.len() > self.max_held {
                self.fail(&channel, CatchUpFailure::TooManyHeld, now);
            }
            return;
        }
        if excluded && message.data.get("own") == Some(&Value::Bool(true)) {
            followed.unconfirmed.pop_front();
        }
        match relation(&followed.last, &position) {
            Relation::Seen => {}
            Relation::Next => {
                followed.last = position;
                if !excluded {
                    self.output.push_back(StreamOutput::Deliver(message));
                }
            }
            Relation::Ahead => {
                self.start(&channel, now);
                if let Some(catch_up) = self.followed.get_mut(&channel).and_then(|f| f.catch_up.as_mut()) {
                    if excluded {
                        catch_up.excluded.insert(position.offset);
                    }
                    catch_up.held.push(message);
                }
            }
        }
    }

    /// A page of history arrived on `channel`.
    pub(crate) fn page(&mut self, channel: &str, page: HistoryPage, now: Instant) {
        let Some(followed) = self.followed.get_mut(channel) else { return };
        let Some(catch_up) = followed.catch_up.as_mut() else { return };
        if page.request_id.as_deref() != Some(catch_up.id.as_str()) {
            return; // an answer to an earlier connection's read, or the app's
        }
        if catch_up.gap.is_none() {
            catch_up.gap = page.gap;
        }
        if page.epoch != followed.last.epoch {
            followed.last = Position { offset: 0, epoch: page.epoch.clone() };
        }
        if page.events.is_empty() {
            followed.last.offset = followed.last.offset.max(page.head);
        }
        for event in page.events {
            if event.offset > followed.last.offset {
                followed.last.offset = event.offset;
                if catch_up.excluded.contains(&event.offset) {
                    continue;
                }
                let message = inbound(channel, event, &page.epoch);
                // Its own event, whose notice the drop took: not handed back.
                let own = message
                    .event
                    .starts_with(CLIENT_EVENT_PREFIX)
                    .then(|| fingerprint(&message.event, &message.data))
                    .and_then(|print| followed.unconfirmed.iter().position(|p| *p == print));
                if let Some(index) = own {
                    followed.unconfirmed.remove(index);
                    continue;
                }
                catch_up.delivered += 1;
                self.output.push_back(StreamOutput::Deliver(message));
            }
        }
        catch_up.attempts = 0;
        catch_up.deadline = now + self.timeout;
        if page.more {
            let read = Self::read(&catch_up.id, &followed.last);
            return self.output.push_back(StreamOutput::Read { channel: channel.to_owned(), read });
        }
        let outcome = match catch_up.gap {
            None => CatchUpOutcome::Complete { events: catch_up.delivered },
            Some(gap) => CatchUpOutcome::Gap { gap, events: catch_up.delivered },
        };
        self.finish(channel, outcome, now);
    }

    /// A read on `channel` was refused.
    pub(crate) fn refused(&mut self, channel: &str, error: HistoryError, now: Instant) {
        let Some(catch_up) = self.followed.get_mut(channel).and_then(|f| f.catch_up.as_mut()) else { return };
        if error.request_id.as_deref() != Some(catch_up.id.as_str()) {
            return;
        }
        if error.code.is_transient() && catch_up.attempts + 1 < READ_ATTEMPTS {
            catch_up.attempts += 1;
            let wait = FIRST_RETRY * 2u32.pow(catch_up.attempts - 1);
            catch_up.retry_at = Some(now + wait);
            catch_up.deadline = now + wait + self.timeout;
            return;
        }
        self.fail(channel, CatchUpFailure::Refused { code: error.code, message: error.message }, now);
    }

    /// Sends reads due again; fails catch-ups past their deadline.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let mut late = Vec::new();
        for (channel, followed) in &mut self.followed {
            let Some(catch_up) = followed.catch_up.as_mut() else { continue };
            if catch_up.retry_at.is_some_and(|at| at <= now) {
                catch_up.retry_at = None;
                let read = Self::read(&catch_up.id, &followed.last);
                self.output.push_back(StreamOutput::Read { channel: channel.clone(), read });
            } else if catch_up.retry_at.is_none() && catch_up.deadline <= now {
                late.push(channel.clone());
            }
        }
        for channel in late {
            self.fail(&channel, CatchUpFailure::NoAnswer, now);
        }
    }

    fn read(id: &str, last: &Position) -> Read {
        Read {
            request_id: Some(id.to_owned()),
            since: Some(last.offset),
            epoch: Some(last.epoch.clone()),
            before: None,
            limit: Some(MAX_PAGE_EVENTS),
        }
    }

    /// Starts (or restarts, after a resubscription) `channel`'s catch-up
    /// from its last position, keeping what it held.
    fn start(&mut self, channel: &str, now: Instant) {
        let Some(followed) = self.followed.get_mut(channel) else { return };
        self.next_id += 1;
        let id = format!("catch-up-{}", self.next_id);
        let (held, excluded, delivered, gap) = match followed.catch_up.take() {
            Some(old) => (old.held, old.excluded, old.delivered, old.gap),
            None => (Vec::new(), BTreeSet::new(), 0, None),
        };
        let read = Self::read(&id, &followed.last);
        let deadline = now + self.timeout;
        followed.catch_up =
            Some(CatchUp { id, held, excluded, delivered, gap, attempts: 0, retry_at: None, deadline });
        self.output.push_back(StreamOutput::Read { channel: channel.to_owned(), read });
    }

    /// Ends a catch-up that could not read everything: the app is told,
    /// and the live events held go on from the first of them.
    fn fail(&mut self, channel: &str, reason: CatchUpFailure, now: Instant) {
        let Some(followed) = self.followed.get_mut(channel) else { return };
        let Some(catch_up) = followed.catch_up.as_mut() else { return };
        if let Some(first) = catch_up.held.first().and_then(|m| m.position.clone())
            && relation(&followed.last, &first) == Relation::Ahead
        {
            // Accept the gap the app is told about.
            followed.last = Position { offset: first.offset.saturating_sub(1), epoch: first.epoch };
        }
        let events = catch_up.delivered;
        self.finish(channel, CatchUpOutcome::Failed { reason, events }, now);
    }

    /// Reports `outcome`, then passes the held live events on (those
    /// already delivered by the catch-up are dropped).
    fn finish(&mut self, channel: &str, outcome: CatchUpOutcome, now: Instant) {
        let Some(catch_up) = self.followed.get_mut(channel).and_then(|f| f.catch_up.take()) else { return };
        self.output.push_back(StreamOutput::Outcome { channel: channel.to_owned(), outcome });
        for message in catch_up.held {
            self.live(message, now);
        }
    }
}

#[cfg(test)]
mod tests;
