//! Scrolling back: the app asks for a page of a channel's history
//! ([`ClientMachine::read_history`]); the answer comes back as one
//! [`Event::History`], its events opened with the app ring. A page naming
//! a key version the ring lacks waits while the key is asked for (like a
//! live event), at most `key_timeout`; then what still does not open is
//! reported per event as undecryptable, never as ciphertext.

use std::collections::VecDeque;

use serde_json::Value;

use super::{ClientMachine, CommandError, Event};
use crate::client::sealed::open_event;
use crate::crypto::{CryptoError, Scope};
use crate::keys::{Asked, KeyRequest};
use crate::protocol::event::parse_data;
use crate::protocol::history::{self, HistoryError, HistoryPage, MAX_PAGE_EVENTS, Read};
use crate::time::Instant;

/// The request ids of the app's reads (catch-ups use their own).
const PREFIX: &str = "history-";

/// One event of a page the app asked for.
#[derive(Debug)]
pub struct HistoryItem {
    /// Its offset in the stream (ask `before` the first one for the page
    /// before).
    pub offset: u64,
    /// Event name.
    pub event: String,
    /// Sender, where there was one (presence client events).
    pub user_id: Option<String>,
    /// When the server took it, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Its data opened (with the scope its sealed fields were bound to),
    /// or why it did not open.
    pub content: Result<(Value, Option<Scope>), CryptoError>,
}

/// A page the app asked for, opened.
#[derive(Debug)]
pub struct HistoryRead {
    /// Events, oldest first.
    pub items: Vec<HistoryItem>,
    /// Older events are kept: ask again `before` the first item's offset.
    pub more: bool,
}

/// A page waiting for keys.
#[derive(Debug)]
pub(super) struct WaitingPage {
    since: Instant,
    channel: String,
    page: HistoryPage,
}

/// Whether a request id is one of the app's reads.
pub(super) fn is_app_read(request_id: Option<&str>) -> bool {
    request_id.is_some_and(|id| id.starts_with(PREFIX))
}

impl ClientMachine {
    /// Asks for a page of `channel`'s history, scrolling back: the newest
    /// `limit` events (1–1,000) before offset `before` (`None`: the
    /// newest). The channel must be subscribed. Returns the request id the
    /// answer, [`Event::History`], carries.
    pub fn read_history(
        &mut self,
        channel: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<String, CommandError> {
        self.link.check_sendable(channel)?;
        self.history_reads += 1;
        let request_id = format!("{PREFIX}{}", self.history_reads);
        let read = Read {
            request_id: Some(request_id.clone()),
            since: None,
            epoch: None,
            before,
            limit: Some(limit.clamp(1, MAX_PAGE_EVENTS)),
        };
        let data = serde_json::to_value(&read).unwrap_or(Value::Null);
        self.link.send(channel, history::READ, data)?;
        Ok(request_id)
    }

    /// The answer to one of the app's reads.
    pub(super) fn on_app_page(&mut self, channel: String, page: Result<HistoryPage, HistoryError>) {
        match page {
            Err(error) => {
                let request_id = error.request_id.clone().unwrap_or_default();
                self.events.push_back(Event::History { channel, request_id, result: Err(error) });
            }
            Ok(page) => {
                let waiting = WaitingPage { since: self.now, channel, page };
                if let Some(waiting) = self.try_open_page(waiting, false) {
                    self.waiting_pages.push_back(waiting);
                }
            }
        }
    }

    /// Delivers the waiting pages that open now (or, given up, with what
    /// does not open reported per event).
    pub(super) fn release_pages(&mut self, give_up_before: Option<Instant>) {
        let waiting: VecDeque<WaitingPage> = std::mem::take(&mut self.waiting_pages);
        for page in waiting {
            let give_up = give_up_before.is_some_and(|before| page.since <= before);
            if let Some(page) = self.try_open_page(page, give_up) {
                self.waiting_pages.push_back(page);
            }
        }
    }

    /// The oldest waiting page's time, for the key timeout.
    pub(super) fn oldest_waiting_page(&self) -> Option<Instant> {
        self.waiting_pages.iter().map(|page| page.since).min()
    }

    /// Opens every event of the page, or gives it back when one needs a key
    /// the app may still supply (asking for it).
    fn try_open_page(&mut self, waiting: WaitingPage, give_up: bool) -> Option<WaitingPage> {
        let mut items = Vec::with_capacity(waiting.page.events.len());
        let mut wait = false;
        for event in &waiting.page.events {
            let mut data = parse_data(serde_json::from_str(event.data.get()).ok());
            let content = match open_event(&mut data, self.keys.app_ring()) {
                Ok(scope) => Ok((data, scope)),
                Err(error) => {
                    if let CryptoError::UnknownKey { kid, kv } = error.root()
                        && !give_up
                    {
                        let request =
                            KeyRequest { kid: kid.clone(), kv: Some(*kv), doc_id: None, key_hint: None };
                        wait |= self.keys.ask(request) == Asked::Waiting;
                    }
                    Err(error)
                }
            };
            items.push(HistoryItem {
                offset: event.offset,
                event: event.event.clone(),
                user_id: event.user_id.clone(),
                time_ms: event.time_ms,
                content,
            });
        }
        if wait {
            return Some(waiting);
        }
        let WaitingPage { channel, page, .. } = waiting;
        let request_id = page.request_id.unwrap_or_default();
        let result = Ok(HistoryRead { items, more: page.more });
        self.events.push_back(Event::History { channel, request_id, result });
        None
    }
}
