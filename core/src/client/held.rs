//! Messages waiting for a key: received events whose envelopes name a key
//! the ring lacks (delivered, in their channel's order, once the app
//! answers the `NeedKey` request), and sealed events the app sent before
//! the ring held the key to seal with. Both are bounded in count and in
//! time: past either bound the oldest is given up visibly (delivered as
//! undecryptable, or reported as not sent), never dropped silently.

use crate::time::Instant;
use std::collections::VecDeque;

use serde_json::Value;

use crate::crypto::Scope;
use crate::protocol::history::Position;

/// A received event on its way to the app.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    pub(crate) channel: Option<String>,
    pub(crate) event: String,
    pub(crate) data: Value,
    pub(crate) user_id: Option<String>,
    /// Its place in the channel's stream, on a channel with history.
    pub(crate) position: Option<Position>,
}

/// An event to send that waits: sealed ones for the key to seal with,
/// plain ones behind a waiting one on the same channel (order).
#[derive(Debug, Clone)]
pub(crate) struct PendingSend {
    pub(crate) channel: String,
    pub(crate) event: String,
    pub(crate) data: Value,
    pub(crate) seal: Option<Seal>,
}

/// What to seal an event's data with.
#[derive(Debug, Clone)]
pub(crate) struct Seal {
    pub(crate) paths: Vec<String>,
    pub(crate) kid: String,
    pub(crate) scope: Scope,
}

/// A bounded FIFO of items with the time each arrived.
#[derive(Debug)]
pub(crate) struct Held<T> {
    items: VecDeque<(Instant, T)>,
    max: usize,
}

impl<T> Held<T> {
    pub(crate) fn new(max: usize) -> Held<T> {
        Held { items: VecDeque::new(), max: max.max(1) }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.max
    }

    pub(crate) fn push(&mut self, now: Instant, item: T) {
        self.items.push_back((now, item));
    }

    /// When the oldest item arrived.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.items.front().map(|(at, _)| *at)
    }

    pub(crate) fn pop_oldest(&mut self) -> Option<T> {
        self.items.pop_front().map(|(_, item)| item)
    }

    /// Takes every item out (in order), for a pass that puts back what
    /// must still wait.
    pub(crate) fn take_all(&mut self) -> VecDeque<(Instant, T)> {
        std::mem::take(&mut self.items)
    }

    /// Puts an item back during such a pass (keeping its arrival time).
    pub(crate) fn put_back(&mut self, at: Instant, item: T) {
        self.items.push_back((at, item));
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(_, item)| item)
    }
}
