//! [`MemoryHistory`]: streams in the server's memory. A restart forgets
//! them, so every stream starts again in a new epoch (readers are told
//! `epoch_changed`, never handed a silent gap).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use sealcast_core::protocol::history::{HistoryEvent, HistoryPage, Position, Read};
use serde_json::value::RawValue;

use super::page::{self, PageBounds, StreamState, Window};
use super::{
    EVENT_OVERHEAD_BYTES, HistoryStore, HistoryStoreError, NewEvent, StreamLimits, new_epoch, ttl_ms,
};

/// Every app's streams, behind one lock (appends and reads are short:
/// a page is at most `max_page_bytes` of copies).
#[derive(Debug, Default)]
pub struct MemoryHistory {
    apps: Mutex<HashMap<String, AppStreams>>,
}

#[derive(Debug, Default)]
struct AppStreams {
    streams: HashMap<Arc<str>, Stream>,
    /// Bytes kept over all streams.
    bytes: usize,
    /// Events kept over all streams.
    kept: usize,
    /// Every event appended, oldest first, as (channel, offset): the order
    /// the app's byte cap drops them in. Entries of events already
    /// trimmed by their stream's own bounds are skipped, and compacted
    /// away when they outnumber the kept ones.
    order: VecDeque<(Arc<str>, u64)>,
}

#[derive(Debug)]
struct Stream {
    epoch: String,
    head: u64,
    /// Consecutive offsets, oldest first.
    events: VecDeque<HistoryEvent>,
    bytes: usize,
}

fn cost(event: &HistoryEvent) -> usize {
    EVENT_OVERHEAD_BYTES
        + event.event.len()
        + event.data.get().len()
        + event.user_id.as_ref().map_or(0, String::len)
}

impl Stream {
    fn state(&self) -> StreamState {
        StreamState {
            epoch: self.epoch.clone(),
            head: self.head,
            first: self.events.front().map(|e| e.offset),
        }
    }
}

impl AppStreams {
    /// Drops `channel`'s oldest event; false when it has none.
    fn drop_oldest(&mut self, channel: &str) -> bool {
        let Some(stream) = self.streams.get_mut(channel) else { return false };
        let Some(event) = stream.events.pop_front() else { return false };
        let cost = cost(&event);
        stream.bytes -= cost;
        self.bytes -= cost;
        self.kept -= 1;
        true
    }

    /// Drops `channel`'s events older than `oldest_ms`.
    fn expire(&mut self, channel: &str, oldest_ms: u64) {
        while self
            .streams
            .get(channel)
            .and_then(|s| s.events.front())
            .is_some_and(|event| event.time_ms < oldest_ms)
        {
            self.drop_oldest(channel);
        }
    }

    /// Drops the app's oldest events until it is within `max_bytes`.
    /// A stream left with nothing is forgotten (its next event starts a
    /// new epoch).
    fn cap(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let Some((channel, offset)) = self.order.pop_front() else { break };
            let oldest = self.streams.get(&channel).and_then(|s| s.events.front()).map(|e| e.offset);
            if oldest == Some(offset) {
                self.drop_oldest(&channel);
                if self.streams.get(&channel).is_some_and(|s| s.events.is_empty()) {
                    self.streams.remove(&channel);
                }
            }
        }
        if self.order.len() > 2 * self.kept + 64 {
            let streams = &self.streams;
            self.order.retain(|(channel, offset)| {
                streams
                    .get(channel)
                    .and_then(|s| s.events.front())
                    .is_some_and(|first| first.offset <= *offset)
            });
        }
    }
}

impl MemoryHistory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, AppStreams>> {
        self.apps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HistoryStore for MemoryHistory {
    fn append(
        &self,
        app: &str,
        channel: &str,
        event: NewEvent<'_>,
        limits: &StreamLimits,
        now_ms: u64,
    ) -> Result<Position, HistoryStoreError> {
        let data = match event.data {
            Some(data) => data.to_owned(),
            None => {
                RawValue::from_string("null".into()).map_err(|e| HistoryStoreError::Backend(e.to_string()))?
            }
        };
        let mut apps = self.lock();
        let streams = apps.entry(app.to_owned()).or_default();
        streams.expire(channel, now_ms.saturating_sub(ttl_ms(limits.ttl)));
        let name: Arc<str> = match streams.streams.get_key_value(channel) {
            Some((name, _)) => name.clone(),
            None => channel.into(),
        };
        let stream = streams.streams.entry(name.clone()).or_insert_with(|| Stream {
            epoch: new_epoch(),
            head: 0,
            events: VecDeque::new(),
            bytes: 0,
        });
        stream.head += 1;
        let kept = HistoryEvent {
            offset: stream.head,
            event: event.event.to_owned(),
            data,
            user_id: event.user_id.map(str::to_owned),
            time_ms: now_ms,
        };
        let cost = cost(&kept);
        let position = Position { offset: stream.head, epoch: stream.epoch.clone() };
        stream.events.push_back(kept);
        stream.bytes += cost;
        streams.bytes += cost;
        streams.kept += 1;
        streams.order.push_back((name, position.offset));
        while streams
            .streams
            .get(channel)
            .is_some_and(|s| s.events.len() > limits.max_events || s.bytes > limits.max_bytes)
        {
            streams.drop_oldest(channel);
        }
        streams.cap(limits.app_max_bytes);
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
        let mut apps = self.lock();
        let Some(streams) = apps.get_mut(app) else {
            let (window, gap) = page::plan(read, &StreamState::default())?;
            return Ok(page::finish(read, StreamState::default(), window, gap, Vec::new()));
        };
        streams.expire(channel, now_ms.saturating_sub(ttl_ms(limits.ttl)));
        let Some(stream) = streams.streams.get(channel) else {
            let (window, gap) = page::plan(read, &StreamState::default())?;
            return Ok(page::finish(read, StreamState::default(), window, gap, Vec::new()));
        };
        let state = stream.state();
        let (window, gap) = page::plan(read, &state)?;
        let first = state.first.unwrap_or(state.head + 1);
        let index = |offset: u64| usize::try_from(offset.saturating_sub(first)).unwrap_or(usize::MAX);
        let mut events = Vec::new();
        let mut bytes = 0;
        match window {
            Window::After(after) => {
                for event in stream.events.iter().skip(index(after.saturating_add(1))) {
                    if !page::fits(bounds, events.len(), bytes, cost(event)) {
                        break;
                    }
                    bytes += cost(event);
                    events.push(event.clone());
                }
            }
            Window::Before(before) => {
                let end = index(before).min(stream.events.len());
                for event in stream.events.range(..end).rev() {
                    if !page::fits(bounds, events.len(), bytes, cost(event)) {
                        break;
                    }
                    bytes += cost(event);
                    events.push(event.clone());
                }
                events.reverse();
            }
        }
        Ok(page::finish(read, state, window, gap, events))
    }

    fn app_bytes(&self, app: &str) -> usize {
        self.lock().get(app).map_or(0, |streams| streams.bytes)
    }
}
