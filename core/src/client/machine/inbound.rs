//! Receiving: a document channel's frames go to its document; other
//! events are opened with the app ring and delivered in order per
//! channel, or held (asking for the key) while a key may still come.

use std::collections::HashSet;

use super::{ClientMachine, Event};
use crate::client::held::Inbound;
use crate::client::sealed::open_event;
use crate::crypto::CryptoError;
use crate::doc::DocSync;
use crate::keys::{Asked, DocKeys, KeyRequest};
use crate::protocol::doc::{self, DocReply};
use crate::protocol::{history, server};
use crate::time::Instant;

impl ClientMachine {
    /// The document open on a document channel, if any.
    pub(super) fn doc_on(&mut self, channel: &str) -> Option<(&mut DocSync, DocKeys<'_>)> {
        let doc_id = doc::doc_id_of(channel)?;
        let doc = self.docs.get_mut(doc_id).filter(|doc| doc.channel() == channel)?;
        Some((doc, self.keys.for_doc(doc_id)))
    }

    pub(super) fn on_inbound(&mut self, message: Inbound) {
        let is_doc_event = DocReply::is_reply_event(&message.event) || message.event == doc::CURSOR;
        if is_doc_event && let Some(channel) = message.channel.clone() {
            let now = self.now;
            if let Some((doc, mut keys)) = self.doc_on(&channel) {
                let user_id = message.user_id.as_deref();
                if let Err(error) = doc.handle_event(&mut keys, &message.event, &message.data, user_id, now) {
                    let doc_id = doc::doc_id_of(&channel).unwrap_or_default().to_owned();
                    self.events.push_back(Event::BadDocumentFrame { doc_id, error });
                }
                return;
            }
        }
        if message.event == history::PAGE || message.event == history::ERROR {
            return self.on_history_reply(message);
        }
        if message.position.is_some() || message.event == server::EXCLUDED {
            // A channel with history: in stream order, once (see streams).
            return self.streams.live(message, self.now);
        }
        self.deliver(message);
    }

    /// Delivers `message` after the held events of its channel (opened,
    /// or held while its key may come).
    pub(super) fn deliver(&mut self, message: Inbound) {
        // Behind a held event of the same channel: wait too (order).
        if self.inbound.iter().any(|held| held.channel == message.channel) {
            return self.hold(message);
        }
        if let Some(message) = self.try_open(message, false) {
            self.hold(message);
        }
    }

    pub(super) fn hold(&mut self, message: Inbound) {
        if self.inbound.is_full()
            && let Some(oldest) = self.inbound.pop_oldest()
        {
            self.try_open(oldest, true);
        }
        self.inbound.push(self.now, message);
    }

    /// Opens and delivers `message`, or gives it back when it needs a key
    /// the app may still supply (asking for it). `give_up`: deliver it as
    /// undecryptable rather than wait.
    pub(super) fn try_open(&mut self, mut message: Inbound, give_up: bool) -> Option<Inbound> {
        let event = match open_event(&mut message.data, self.keys.app_ring()) {
            Ok(scope) => {
                let Inbound { channel, event, data, user_id, .. } = message;
                Event::Message { channel, event, data, user_id, scope }
            }
            Err(error) => {
                if let CryptoError::UnknownKey { kid, kv } = error.root()
                    && !give_up
                    && self.keys.ask(KeyRequest {
                        kid: kid.clone(),
                        kv: Some(*kv),
                        doc_id: None,
                        key_hint: None,
                    }) == Asked::Waiting
                {
                    return Some(message);
                }
                let Inbound { channel, event, user_id, .. } = message;
                Event::Undecryptable { channel, event, user_id, error }
            }
        };
        self.events.push_back(event);
        None
    }

    /// Delivers the held events that can go now, in order per channel;
    /// those that arrived at or before `give_up_before` are given up.
    pub(super) fn release(&mut self, give_up_before: Option<Instant>) {
        let mut waiting: HashSet<Option<String>> = HashSet::new();
        for (at, message) in self.inbound.take_all() {
            if waiting.contains(&message.channel) {
                self.inbound.put_back(at, message);
                continue;
            }
            let give_up = give_up_before.is_some_and(|before| at <= before);
            if let Some(message) = self.try_open(message, give_up) {
                waiting.insert(message.channel.clone());
                self.inbound.put_back(at, message);
            }
        }
        self.release_pages(give_up_before);
        self.flush_outcomes();
    }
}
